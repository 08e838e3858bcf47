"""A payload's time field is untrusted: any value is a time or a typed rejection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.sinks.influxdb import to_line
from consumers.sinks.mapping import FieldMapping, arrival_ns
from shardline.errors import ValidationError
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition

RECORD = ConsumedRecord(b"{}", "k", KinesisPosition("s", "shardId-000000000000", "1"))


@pytest.mark.parametrize(
    "value",
    [
        1e300,
        -1e300,
        float("nan"),
        float("inf"),
        True,
        None,
        [1],
        {"t": 1},
        "yesterday",
        "2026-01-01T00:00:00",
    ],
)
def test_a_time_that_is_not_one_is_a_validation_error(value: Any) -> None:
    mapping = FieldMapping(time_field="t", time_unit="s")
    with pytest.raises(ValidationError):
        mapping.time_ns(RECORD, {"t": value})


@pytest.mark.parametrize(
    ("value", "unit", "ns"),
    [
        (1.5, "s", 1_500_000_000),
        (2, "ms", 2_000_000),
        (10**15, "ns", 10**15),
        ("2026-01-01T00:00:00+00:00", "s", 1767225600 * 10**9),
    ],
)
def test_a_time_is_read_in_its_unit(value: Any, unit: str, ns: int) -> None:
    assert FieldMapping(time_field="t", time_unit=unit).time_ns(RECORD, {"t": value}) == ns


def test_records_sharing_an_arrival_millisecond_are_distinct_points_stable_across_replays() -> None:
    # every user record of a KPL aggregate shares its arrival time: as one point's time, a
    # device's readings packed together overwrote each other in Timestream and InfluxDB
    arrival = datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)
    base = 1_704_110_400_123_000_000
    aggregate = [
        ConsumedRecord(
            b'{"device": "d1", "temp": %d}' % sub,
            "k",
            KinesisPosition("s", "shardId-000000000000", "42", sub),
            arrival_time=arrival,
        )
        for sub in range(3)
    ]
    kafka = [
        ConsumedRecord(b"{}", "k", KafkaPosition("t", 0, offset), arrival_time=arrival)
        for offset in (1_000_005, 1_000_006)
    ]
    mapping = FieldMapping(dimensions=("device",))
    times = [mapping.time_ns(record, {}) for record in aggregate + kafka]
    assert times == [base, base + 1, base + 2, base + 5, base + 6]
    assert [arrival_ns(record) for record in aggregate + kafka] == times  # the same on a replay
    point_times = {to_line(record, mapping).split()[-1] for record in aggregate}
    assert len(point_times) == 3
    # a time finer than milliseconds is not one these sources give: kept as it is
    precise = datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert arrival_ns(ConsumedRecord(b"{}", "k", aggregate[2].position, arrival_time=precise)) == (
        base + 456_000
    )
