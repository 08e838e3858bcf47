"""Crafted records through the Firehose sink and the S3 dead letter over moto's wire, and back.

Whoever writes to a stream chooses every byte of a record but its position.  Written through
the Firehose sink (moto delivering to S3) and backfilled with the archive reader, each record
must come back once, as itself, and a second pass through the sink must deliver the very lines
of the first (the same ``event_id``: downstream deduplication absorbs the replay).  A record
Firehose cannot take is refused alone.  Dead letters of different records never share an
object, whatever their identities spell.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.replay.job import ReplayJob
from consumers.replay.ranges import S3ArchiveReader
from consumers.sinks.base import DeadLetterEntry, EntryResult, Outcome
from consumers.sinks.deadletter import S3DeadLetter
from consumers.sinks.firehose import FirehoseSink, encode_line
from consumers.sinks.memory import MemorySink
from shardline.limits import FIREHOSE_RECORD_MAX_BYTES
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition
from tests.crafted_records import archived_fields, crafted_records
from tests.integration.sink_readback import new_delivery_stream, s3_objects

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class RecordingSink(MemorySink):
    """A memory sink that also keeps every record it was sent, in order."""

    def __init__(self) -> None:
        super().__init__(max_entries=500)
        self.received: list[ConsumedRecord] = []

    async def send(self, entries: Sequence[ConsumedRecord]) -> Sequence[EntryResult]:
        self.received.extend(entries)
        return await super().send(entries)


def lines_of(objects: dict[str, bytes]) -> list[bytes]:
    return sorted(line for body in objects.values() for line in body.splitlines(keepends=True))


async def test_crafted_records_cross_firehose_and_a_backfill_unchanged(
    s3_and_firehose: tuple[Any, Any],
) -> None:
    s3, firehose = s3_and_firehose
    bucket = f"crafted-{uuid.uuid4().hex[:10]}"
    await s3.create_bucket(Bucket=bucket)
    first = await new_delivery_stream(firehose, bucket, "first/")
    again = await new_delivery_stream(firehose, bucket, "again/")

    oversized = ConsumedRecord(b"\x00" * 800_000, "k", KinesisPosition("s", "shardId-000000000001", "1"))
    assert len(encode_line(oversized)) > FIREHOSE_RECORD_MAX_BYTES  # its base64 line is over 1000 KiB
    large = [  # over 4 MiB of lines together: more than one call
        ConsumedRecord(bytes([i]) * 600_000, "k", KinesisPosition("s", "shardId-000000000001", str(10 + i)))
        for i in range(8)
    ]
    many = [ConsumedRecord(b"%d" % i, f"k{i}", KafkaPosition("many", 0, i)) for i in range(600)]
    records = crafted_records()
    batch = [*records[:8], oversized, *records[8:], *large, *many]

    results = await FirehoseSink(first, client=firehose).write(batch)

    refused = [(i, r.error_type) for i, r in enumerate(results) if r.outcome is not Outcome.WRITTEN]
    assert refused == [(8, "RecordTooLargeError")]  # the one record Firehose cannot take, alone
    written = [r for r in batch if r is not oversized]

    recording = RecordingSink()
    summary = await ReplayJob(S3ArchiveReader(s3, bucket, "first/"), recording, MemoryCheckpointStore()).run()
    assert (summary.read, summary.malformed, summary.exit_status) == (len(written), 0, 0)
    by_position = {r.position: r for r in recording.received}
    assert len(by_position) == len(recording.received) == len(written)  # each once
    assert [archived_fields(by_position[r.position]) for r in written] == [
        archived_fields(r) for r in written
    ]

    replayed = FirehoseSink(again, client=firehose)
    await ReplayJob(S3ArchiveReader(s3, bucket, "first/"), replayed, MemoryCheckpointStore()).run()
    first_lines = lines_of(await s3_objects(s3, bucket, "first/"))
    assert len(first_lines) == len(written)
    assert lines_of(await s3_objects(s3, bucket, "again/")) == first_lines  # byte for byte


def signed(offset: int, event_id: str, data: bytes) -> DeadLetterEntry:
    record = ConsumedRecord(
        data, "k\n", KafkaPosition("t", 0, offset), event_id=event_id, event_id_verified=True
    )
    return DeadLetterEntry(record=record, reason="poison", error_type="ValidationError", attempts=1)


async def test_dead_letters_of_crafted_identities_keep_objects_of_their_own(
    s3_and_firehose: tuple[Any, Any],
) -> None:
    s3, _ = s3_and_firehose
    bucket = f"dlq-{uuid.uuid4().hex[:10]}"
    await s3.create_bucket(Bucket=bucket)
    dead = S3DeadLetter(bucket, "dlq", client=s3)
    one = [signed(1, "a\nb", b"one\n{}")]
    two = [signed(2, "a", b"two"), signed(3, "b", b"three")]
    traversal = [signed(4, "../../outside/x", b"four"), signed(5, "/" * 1500, b"five")]

    for entries in (two, one, traversal, two, one):  # the retries overwrite their own objects
        await dead.put(entries)

    objects = await s3_objects(s3, bucket)
    assert all(key.startswith("dlq/undated/") for key in objects)  # no identity reaches a key
    held = sorted(
        sorted(json.loads(line)["position"]["offset"] for line in body.splitlines())
        for body in objects.values()
    )
    assert held == [[1], [2, 3], [4, 5]]  # an object per put, a line per entry
