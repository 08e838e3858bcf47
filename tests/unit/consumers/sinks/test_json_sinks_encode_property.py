"""Any JSON object a record carries is encoded by a JSON sink or rejected as a ValidationError.

Anything else raised by ``encode`` fails the whole sink call, which the pipeline then bisects
to find the record: a RecursionError from deep nesting, an OverflowError from a time field,
and decimal's Overflow, Underflow and Inexact from numbers DynamoDB cannot hold all did.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.sinks.dynamodb import DynamoDBSink
from consumers.sinks.influxdb import to_line
from consumers.sinks.mapping import FieldMapping
from consumers.sinks.timestream import TimestreamSink
from shardline.errors import ValidationError
from shardline.records import ConsumedRecord, KinesisPosition
from tests.json_values import json_values

_VALUES = json_values(int_bound=2**80, text_size=12, max_leaves=8)
_PAYLOADS = st.dictionaries(
    st.sampled_from(["pk", "t", "v", "device", "shardline_version", "x", "", "a b"]), _VALUES, max_size=6
)
_MAPPINGS = (
    FieldMapping(),
    FieldMapping(time_field="t", time_unit="ms", dimensions=("device",), version_field="v"),
    FieldMapping(keys=("pk",), version_field="v"),
    FieldMapping(time_field="t", multi_measure=False, measures=("x", "v")),
)


def _encoders() -> list[Any]:
    encoders: list[Any] = []
    for mapping in _MAPPINGS:
        encoders.append(DynamoDBSink("table", mapping=mapping, client=object()).encode)
        encoders.append(TimestreamSink("db", "table", mapping=mapping, client=object()).encode)
        encoders.append(lambda record, mapping=mapping: to_line(record, mapping))
    return encoders


ENCODERS = _encoders()


@settings(max_examples=400, deadline=None)
@given(_PAYLOADS, st.sampled_from(range(len(ENCODERS))))
def test_encode_gives_an_entry_or_a_validation_error(payload: dict[str, Any], encoder: int) -> None:
    record = ConsumedRecord(
        json.dumps(payload).encode(),
        "k",
        KinesisPosition("s", "shardId-000000000000", "1"),
        arrival_time=datetime(2026, 1, 1, tzinfo=UTC),
    )
    with contextlib.suppress(ValidationError):  # a typed rejection is a fine outcome
        ENCODERS[encoder](record)
