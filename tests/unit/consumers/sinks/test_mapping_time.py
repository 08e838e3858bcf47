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
    # pinned: a change here moves every point already written to another time
    assert times == [base + 711_738, base + 711_739, base + 711_740, base + 5, base + 6]
    assert [arrival_ns(record) for record in aggregate + kafka] == times  # the same on a replay
    point_times = {to_line(record, mapping).split()[-1] for record in aggregate}
    assert len(point_times) == 3
    # a time finer than milliseconds is not one these sources give: kept as it is
    precise = datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert arrival_ns(ConsumedRecord(b"{}", "k", aggregate[2].position, arrival_time=precise)) == (
        base + 456_000
    )


def test_plain_records_of_one_request_are_distinct_points_stable_across_replays() -> None:
    # plain records of one PutRecords request share their arrival millisecond and each has
    # sub-sequence number 0: with that number alone below the millisecond, a device's readings
    # sent together were one point, and InfluxDB kept the last of them
    arrival = datetime(2024, 5, 1, 12, tzinfo=UTC)
    sequences = (
        "49590338271490256608559692538361571095921575989136588898",
        "49590338271490256608559692540925702759324208523137515618",
    )
    readings = [
        ConsumedRecord(
            b'{"device": "d1", "temp": %d}' % index,
            "d1",
            KinesisPosition("s", "shardId-000000000000", sequence),
            arrival_time=arrival,
        )
        for index, sequence in enumerate(sequences)
    ]
    mapping = FieldMapping(dimensions=("device",))
    base = 1_714_564_800_000_000_000
    assert [arrival_ns(record) for record in readings] == [base + 582_017, base + 149_169]
    lines = [to_line(record, mapping) for record in readings]
    assert len({line.split()[-1] for line in lines}) == 2
    # the stream's name or ARN, whichever the reader was given, does not move the point
    by_arn = ConsumedRecord(
        readings[0].data,
        "d1",
        KinesisPosition(
            "arn:aws:kinesis:eu-west-1:123456789012:stream/s", "shardId-000000000000", sequences[0]
        ),
        arrival_time=arrival,
    )
    assert arrival_ns(by_arn) == arrival_ns(readings[0])
