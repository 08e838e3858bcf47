"""A backfill from an archive resumes exactly where its last run stopped, duplicates included.

Firehose delivers at least once, so an archive object may hold a record twice.  The replay
source checkpoints the resume token of the batch a record ends; it used to find that batch
by the record's identity, so a copy of the acknowledged record at the end of a later batch
moved the checkpoint past records that were never written.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from typing import Any

import pytest

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.replay.job import ReplayJob
from consumers.replay.ranges import S3ArchiveReader, archive_partition_id
from consumers.sinks.firehose import encode_line
from shardline.errors import InvalidRequestError, ShardlineError
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition
from tests.unit.consumers.pipeline_doubles import RecordingSink

BOUND = 10.0
SEQUENCES = [1, 2, 3, 4, 5, 6, 7, 2, 9, 10]  # the 8th line repeats record 2; batches of 4 lines


def _record(sequence: int) -> ConsumedRecord:
    return ConsumedRecord(b"v%d" % sequence, "k", KinesisPosition("s", "shardId-0", str(sequence)))


class _Body:
    def __init__(self, data: bytes, done: asyncio.Event) -> None:
        self._file = io.BytesIO(data)
        self._done = done

    async def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        if not chunk:
            self._done.set()
        return chunk

    async def __aenter__(self) -> _Body:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class _Bucket:
    """One archive object; ``read`` is set once it was read to its end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.read = asyncio.Event()

    async def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": _Body(self.data, self.read)}

    async def list_objects_v2(self, **_: Any) -> dict[str, Any]:
        return {"Contents": [{"Key": "object", "Size": len(self.data)}]}


def _refuses_record_3(batch: Sequence[ConsumedRecord]) -> BaseException | None:
    if any(record.position.sequence_number == "3" for record in batch):  # type: ignore[attr-defined]
        return InvalidRequestError("refused", service="test")
    return None


async def test_a_rerun_writes_every_record_after_the_failure_even_when_a_later_batch_repeats_one() -> None:
    bucket = _Bucket(b"".join(encode_line(_record(sequence)) for sequence in SEQUENCES))
    store = MemoryCheckpointStore()
    first = RecordingSink(fail=_refuses_record_3)
    first.gate = bucket.read  # the whole object is read (every batch handed out) before a write
    job = ReplayJob(S3ArchiveReader(bucket, "bucket", batch_size=4), first, store)
    with pytest.raises(ShardlineError):  # the refused record fails the run: no dead letter
        await asyncio.wait_for(job.run(), BOUND)
    second = RecordingSink()
    await asyncio.wait_for(
        ReplayJob(S3ArchiveReader(bucket, "bucket", batch_size=4), second, store).run(), BOUND
    )
    written = {
        int(record.position.sequence_number) for record in [*first.written.values(), *second.written.values()]
    }  # type: ignore[attr-defined]
    # before: the first run checkpointed the end of the batch ending with the copy of record 2,
    # so the rerun wrote 9 and 10 only, and 3 to 7 were never written
    assert written == set(SEQUENCES)


async def test_batches_end_at_a_byte_bound_as_well_as_a_record_count() -> None:
    # a small gzip object of large records made 500-record batches of gigabytes
    large = [ConsumedRecord(b"x" * 300_000, "k", KinesisPosition("s", "shard-0", str(n))) for n in range(10)]
    bucket = _Bucket(b"".join(encode_line(record) for record in large))
    reader = S3ArchiveReader(bucket, "bucket", batch_size=500, batch_bytes=1_000_000)
    sizes = [
        (len(records), sum(len(record.data) for record in records), token)
        async for records, token in reader.read("object", None)
    ]
    assert [count for count, _, _ in sizes] == [4, 4, 2]
    assert all(held < 1_000_000 + 300_000 for _, held, _ in sizes)
    assert [token for _, _, token in sizes] == ["4", "8", "10"]


@pytest.mark.parametrize(
    "large",
    [
        {"partition_key": "k" * 300_000},  # a Kafka key: no 256-character bound
        {"partition_key": "k", "event_id": "e" * 300_000},  # a Kafka header's event id
    ],
    ids=["partition key", "event id"],
)
async def test_the_byte_bound_counts_keys_and_event_ids_as_well_as_data(large: dict[str, str]) -> None:
    # before: only data was counted, so 500 lines of 900 KB keys (each under Firehose's record
    # cap) made one batch of ~450 MB; here all ten lines came in one batch
    records = [ConsumedRecord(b"x", position=KafkaPosition("t", 0, n), **large) for n in range(10)]
    bucket = _Bucket(b"".join(encode_line(record) for record in records))
    reader = S3ArchiveReader(bucket, "bucket", batch_size=500, batch_bytes=1_000_000)
    batches = [(len(batch), token) async for batch, token in reader.read("object", None)]
    assert batches == [(4, "4"), (4, "8"), (2, "10")]


class _LongKeyBucket(_Bucket):
    """One object under a key longer than a checkpoint store keeps (S3 allows 1,024)."""

    KEY = "firehose/" + "p" * 400 + "/2026/12/06/telemetry-1"

    async def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        assert Key == self.KEY  # read by its key, whatever its partition id
        return await super().get_object(Bucket=Bucket, Key=Key)

    async def list_objects_v2(self, **_: Any) -> dict[str, Any]:
        return {"Contents": [{"Key": self.KEY, "Size": len(self.data)}]}


async def test_an_object_under_a_key_too_long_for_a_checkpoint_id_is_replayed_and_resumable() -> None:
    """Before: the key was the checkpoint id, and a store refuses ids over 256 characters."""
    bucket = _LongKeyBucket(b"".join(encode_line(_record(sequence)) for sequence in range(1, 6)))
    store = MemoryCheckpointStore()
    sink = RecordingSink()
    await asyncio.wait_for(ReplayJob(S3ArchiveReader(bucket, "bucket"), sink, store).run(), BOUND)
    assert len(sink.written) == 5
    rerun = RecordingSink()  # the object is finished under its id: nothing is read again
    await asyncio.wait_for(ReplayJob(S3ArchiveReader(bucket, "bucket"), rerun, store).run(), BOUND)
    assert not rerun.written
    short = archive_partition_id("firehose/2026/12/06/telemetry-1.gz")
    assert short == "firehose/2026/12/06/telemetry-1.gz"  # keys that fit keep their ids
    assert archive_partition_id(_LongKeyBucket.KEY).startswith("s3-key-sha256:")
