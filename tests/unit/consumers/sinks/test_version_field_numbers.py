"""A mapping's ``version_field`` reads the same in every sink: a whole number in whatever type
the sink's JSON parser gives it, and a fraction refused instead of truncated."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from consumers.sinks.dynamodb import DynamoDBSink
from consumers.sinks.mapping import FieldMapping
from consumers.sinks.timestream import TimestreamSink
from shardline.errors import ValidationError
from shardline.records import ConsumedRecord, KinesisPosition

ARRIVAL = datetime(2024, 5, 1, tzinfo=UTC)
MAPPING = FieldMapping(keys=("device",), dimensions=("device",), measures=("temp",), version_field="rev")


def _reading(rev: object) -> ConsumedRecord:
    payload = {"device": "d1", "temp": 20.5, "rev": rev}
    position = KinesisPosition("s", "shardId-0", "1")
    return ConsumedRecord(json.dumps(payload).encode(), "d1", position, arrival_time=ARRIVAL)


def _sinks() -> list[DynamoDBSink | TimestreamSink]:
    return [
        DynamoDBSink("readings", client=object(), mapping=MAPPING, guarded=True),
        TimestreamSink("db", "table", client=object(), mapping=MAPPING),
    ]


@pytest.mark.parametrize("rev", [7, 7.0, 1_714_521_600_123])
def test_a_whole_number_version_is_read_by_every_sink(rev: object) -> None:
    for sink in _sinks():
        assert sink.encode(_reading(rev)).version == rev, type(sink).__name__


@pytest.mark.parametrize("rev", [1_714_521_600.5, 7.25])
def test_a_fractional_version_is_refused_by_every_sink(rev: float) -> None:
    for sink in _sinks():
        with pytest.raises(ValidationError, match="not a whole number"):
            sink.encode(_reading(rev))
