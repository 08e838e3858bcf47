"""A backfill of many archive objects reads them with ``concurrency`` tasks, not one per object.

An S3 archive backfill has a partition per object.  The replay source created a task per
partition up front, each waiting for a slot: a million objects held ~2.3 GiB of waiting tasks
before the first record was read.  Now a fixed set of readers takes the partitions in turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.replay.job import ReplayJob
from shardline.records import ConsumedRecord, KafkaPosition
from tests.unit.consumers.pipeline_doubles import RecordingSink

BOUND = 30.0
OBJECTS = 2_000


class _Archive:
    """``OBJECTS`` objects of one record each; notes the most tasks alive while reading."""

    def __init__(self) -> None:
        self.most_tasks = 0

    async def partitions(self) -> list[str]:
        return [f"2026/12/{number:06d}.json" for number in range(OBJECTS)]

    async def read(
        self, partition: str, after: str | None
    ) -> AsyncIterator[tuple[Sequence[ConsumedRecord], str]]:
        self.most_tasks = max(self.most_tasks, len(asyncio.all_tasks()))
        if after is None:
            position = KafkaPosition("archive", 0, int(partition[8:14]))
            yield [ConsumedRecord(partition.encode(), "k", position)], "end"


async def test_an_archive_of_many_objects_is_read_by_a_bounded_set_of_tasks() -> None:
    archive, sink = _Archive(), RecordingSink()
    summary = await asyncio.wait_for(
        ReplayJob(archive, sink, MemoryCheckpointStore(), concurrency=4).run(), BOUND
    )
    assert summary.read == OBJECTS
    assert sorted(record.data for batch in sink.writes for record in batch) == sorted(
        partition.encode() for partition in await archive.partitions()
    )
    # before: every object's task existed from the start (over 2,000 here)
    assert archive.most_tasks < 40, archive.most_tasks
