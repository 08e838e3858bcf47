"""An ISO-8601 time field converts to nanoseconds exactly: distinct times stay distinct
points, on both sides of the epoch and far from it."""

from __future__ import annotations

import pytest

from consumers.sinks.influxdb import to_line
from consumers.sinks.mapping import FieldMapping
from shardline.records import ConsumedRecord, KinesisPosition

MAPPING = FieldMapping(dimensions=("device",), time_field="ts")


def _time_ns(iso: str) -> int:
    data = b'{"device": "d", "v": 1, "ts": "' + iso.encode() + b'"}'
    record = ConsumedRecord(data, "k", KinesisPosition("s", "shardId-0", "1"))
    time_ns = MAPPING.time_ns(record, {"ts": iso})
    if time_ns <= 2**63 - 2:  # InfluxDB stores no later time: the record is refused there
        assert int(to_line(record, MAPPING).split()[-1]) == time_ns
    return time_ns


@pytest.mark.parametrize(
    ("iso", "expected"),
    [
        ("1969-12-31T23:59:59.500000+00:00", -500_000_000),
        ("1970-01-01T00:00:00.500000+00:00", 500_000_000),
        ("1969-12-31T23:59:59.000001+00:00", -999_999_000),
        ("1970-01-01T01:00:00.250000+01:00", 250_000_000),
        ("2026-01-01T00:00:00.123456+02:00", 1_767_218_400_123_456_000),
        ("9999-12-31T23:59:59.999999+00:00", 253_402_300_799_999_999_000),
    ],
)
def test_an_iso_time_is_converted_exactly(iso: str, expected: int) -> None:
    assert _time_ns(iso) == expected


def test_readings_a_second_apart_across_the_epoch_are_distinct_points() -> None:
    assert _time_ns("1969-12-31T23:59:59.5+00:00") != _time_ns("1970-01-01T00:00:00.5+00:00")
