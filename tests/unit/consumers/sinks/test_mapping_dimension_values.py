"""A dimension (Timestream) or tag (InfluxDB) value is a scalar of the payload.

A nested object or list has no text of its own: written with ``str()`` it became Python repr
text (``{'a': 1}``) in the series' identity, so it is a bad record, refused alone with a
reason that names the dimension, never its value.  Booleans and numbers keep the text they
have always had (``True``, ``1.0``): a replay must land on the series of the original run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.sinks.base import Outcome
from consumers.sinks.influxdb import to_line
from consumers.sinks.mapping import FieldMapping
from consumers.sinks.timestream import TimestreamSink
from shardline.errors import ValidationError
from shardline.records import ConsumedRecord, KafkaPosition
from tests.unit.consumers.sinks.timestream_doubles import ValidatingTimestream

MAPPING = FieldMapping(dimensions=("device",), time_field="ts")


def _record(offset: int, device: Any) -> ConsumedRecord:
    payload = {"device": device, "ts": 1_714_521_600_000 + offset, "temp": 1.5}
    return ConsumedRecord(
        json.dumps(payload).encode(),
        "k",
        KafkaPosition("t", 0, offset),
        arrival_time=datetime(2024, 1, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize("value", [{"secret": "s3cr3t"}, ["s3cr3t", 1], []])
def test_a_nested_dimension_value_is_refused_by_name(value: Any) -> None:
    with pytest.raises(ValidationError, match="dimension 'device' is a JSON") as caught:
        MAPPING.dimensions_of({"device": value})
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "text"), [(True, "True"), (False, "False"), (7, "7"), (1.0, "1.0"), ("d1", "d1")]
)
def test_scalar_dimension_values_keep_their_text(value: Any, text: str) -> None:
    assert MAPPING.dimensions_of({"device": value}) == {"device": text}


def test_an_influxdb_tag_from_a_nested_value_refuses_that_record() -> None:
    with pytest.raises(ValidationError, match="dimension 'device'"):
        to_line(_record(1, {"a": 1}), MAPPING)


async def test_a_timestream_dimension_from_a_nested_value_refuses_that_record_alone() -> None:
    client = ValidatingTimestream()
    sink = TimestreamSink("db", "table", client=client, mapping=MAPPING)
    results = await sink.write([_record(1, "d1"), _record(2, ["s3cr3t"]), _record(3, "d3")])
    assert [r.outcome for r in results] == [Outcome.WRITTEN, Outcome.REJECTED, Outcome.WRITTEN]
    assert results[1].error_type == "ValidationError"
    assert "s3cr3t" not in results[1].reason
    assert [r["Dimensions"][0]["Value"] for r in client.records] == ["d1", "d3"]
