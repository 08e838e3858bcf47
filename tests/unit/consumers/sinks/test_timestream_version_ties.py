"""Two records of one point whose versions tie: Timestream keeps the first and refuses the
second (its ``ExistingVersion`` equal to the second's own), so the second is dead-lettered,
once, instead of being acknowledged as a duplicate it never was.

Real Kinesis sequence numbers are past 2**53, so a record's version is its arrival time in
milliseconds (:mod:`consumers.sinks.versioning`), and plain records of one PutRecords request
share it; two readings of one device carrying the same time field then share the point too."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from consumers.sinks.base import DeadLetterEntry, Outcome
from consumers.sinks.mapping import FieldMapping
from consumers.sinks.timestream import TimestreamSink
from shardline.records import ConsumedRecord, KinesisPosition
from tests.faults.workflow import deliver
from tests.unit.consumers.sinks.timestream_doubles import UpsertingTimestream

MAPPING = FieldMapping(dimensions=("device",), time_field="ts")
ARRIVAL = datetime(2024, 5, 1, 12, tzinfo=UTC)
SEQUENCES = (
    "49590338271490256608559692538361571095921575989136588898",
    "49590338271490256608559692540925702759324208523137515618",
)


class ListDeadLetter:
    """Every entry put, in order, duplicates included."""

    def __init__(self) -> None:
        self.entries: list[DeadLetterEntry] = []

    async def put(self, entries: list[DeadLetterEntry]) -> None:
        self.entries.extend(entries)

    async def close(self) -> None:
        return None


def _reading(sequence: str, temp: float) -> ConsumedRecord:
    payload = json.dumps({"device": "d1", "temp": temp, "ts": 1_714_564_800_000}).encode()
    return ConsumedRecord(
        payload, "d1", KinesisPosition("s", "shardId-000000000000", sequence), arrival_time=ARRIVAL
    )


async def test_a_reading_whose_version_ties_with_a_different_one_is_dead_lettered_once() -> None:
    client = UpsertingTimestream()
    sink = TimestreamSink("db", "table", client=client, mapping=MAPPING)
    first, second = _reading(SEQUENCES[0], 20.5), _reading(SEQUENCES[1], 21.0)
    one, two = sink.encode(first), sink.encode(second)
    assert (one.version, one.records[0]["Time"]) == (two.version, two.records[0]["Time"])  # a tie

    dead = ListDeadLetter()
    workflow = await deliver(sink, [first, second], dead)

    assert [entry.record for entry in dead.entries] == [second]
    assert dead.entries[0].error_type == "RejectedRecordsException"
    assert (workflow.counts.written, workflow.counts.duplicates) == (1, 0)
    (values,) = client.values().values()
    assert values == [{"Name": "temp", "Value": "20.5", "Type": "DOUBLE"}]


async def test_a_replay_is_still_written_and_only_the_tied_reading_dead_lettered_again() -> None:
    client = UpsertingTimestream()
    sink = TimestreamSink("db", "table", client=client, mapping=MAPPING)
    batch = [_reading(SEQUENCES[0], 20.5), _reading(SEQUENCES[1], 21.0)]
    await deliver(sink, batch, ListDeadLetter())

    replayed = await sink.write(batch)

    assert [r.outcome for r in replayed] == [Outcome.WRITTEN, Outcome.REJECTED]


async def test_a_newer_version_held_by_the_table_still_makes_the_older_write_a_duplicate() -> None:
    class HoldsOneAbove(UpsertingTimestream):
        async def write_records(self, **params: object) -> dict[str, object]:
            version = params["Records"][0]["Version"]  # type: ignore[index]
            rejected = [{"RecordIndex": 0, "Reason": "lower version", "ExistingVersion": version + 1}]
            error = {"Code": "RejectedRecordsException", "Message": "rejected"}
            raise ClientError({"Error": error, "RejectedRecords": rejected}, "WriteRecords")  # type: ignore[typeddict-unknown-key]

    sink = TimestreamSink("db", "table", client=HoldsOneAbove(), mapping=MAPPING)
    results = await sink.write([_reading(SEQUENCES[0], 20.5)])
    assert [r.outcome for r in results] == [Outcome.DUPLICATE]


async def test_readings_of_one_request_timed_by_arrival_are_two_points_both_written() -> None:
    # their versions still tie, but below the millisecond each has a time of its own
    client = UpsertingTimestream()
    sink = TimestreamSink("db", "table", client=client, mapping=FieldMapping(dimensions=("device",)))
    first, second = _reading(SEQUENCES[0], 20.5), _reading(SEQUENCES[1], 21.0)
    dead = ListDeadLetter()
    workflow = await deliver(sink, [first, second], dead)
    assert dead.entries == []
    assert (workflow.counts.written, workflow.counts.duplicates) == (2, 0)
    assert sorted(value[0]["Value"] for value in client.values().values()) == ["20.5", "21.0"]
