"""A replayed range that spans a split or merge writes a parent shard's records before its children's.

The replay source read its partitions side by side, in listing order, ``concurrency`` at a time,
so a child shard could be read (and written) before or alongside its parent: a key's older
value from the parent then landed after its newer value from the child, and a plain sink kept
the older one.  The live consumer reads a child only once its parents are finished; a replay
now does the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.replay.job import ReplayJob
from consumers.replay.kinesis_range import KinesisRange, KinesisRangeReader
from shardline.records import SHARD_END, ConsumedRecord, KinesisPosition
from tests.unit.consumers.pipeline_doubles import RecordingSink

BOUND = 10.0


class _Resharded:
    """``parent`` split into ``child-a`` and ``child-b``; every shard holds records of key ``k``.

    The children are listed first, so reading in listing order writes them first.
    """

    def __init__(self, parent_records: int = 3) -> None:
        self.parent_records = parent_records

    async def partitions(self) -> list[str]:
        return ["child-a", "child-b", "parent"]

    def parents(self, partition: str) -> tuple[str, ...]:
        return ("parent", "not-in-this-job") if partition.startswith("child") else ()

    async def read(
        self, partition: str, after: str | None
    ) -> AsyncIterator[tuple[Sequence[ConsumedRecord], str]]:
        count = self.parent_records if partition == "parent" else 2
        for sequence in range(int(after or 0) + 1, count + 1):
            position = KinesisPosition("s", partition, str(sequence))
            yield [ConsumedRecord(b"%s-%d" % (partition.encode(), sequence), "k", position)], str(sequence)


def _shards_written(sink: RecordingSink) -> list[str]:
    return [record.position.shard_id for batch in sink.writes for record in batch]  # type: ignore[attr-defined]


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_parent_shard_is_written_before_its_children(concurrency: int) -> None:
    sink = RecordingSink()
    job = ReplayJob(_Resharded(), sink, MemoryCheckpointStore(), concurrency=concurrency)
    summary = await asyncio.wait_for(job.run(), BOUND)
    order = _shards_written(sink)
    assert summary.read == 7 and len(order) == 7
    assert order[:3] == ["parent"] * 3, order


async def test_children_of_an_empty_parent_are_still_read() -> None:
    job = ReplayJob(_Resharded(parent_records=0), RecordingSink(), MemoryCheckpointStore())
    summary = await asyncio.wait_for(job.run(), BOUND)
    assert summary.read == 4  # the empty parent ended: both children were read


async def test_children_of_a_parent_finished_by_an_earlier_run_are_still_read() -> None:
    store = MemoryCheckpointStore()
    await store.create_if_absent("parent")
    lease = await store.acquire("parent", "an-earlier-run")
    await store.checkpoint(lease, SHARD_END)
    await store.release(lease)
    summary = await asyncio.wait_for(ReplayJob(_Resharded(), RecordingSink(), store).run(), BOUND)
    assert (summary.read, summary.partitions_skipped) == (4, 1)


class _ListingKinesis:
    async def list_shards(self, **_: Any) -> dict[str, Any]:
        def shard(shard_id: str, low: int, high: int, parent: str | None = None) -> dict[str, Any]:
            described: dict[str, Any] = {
                "ShardId": shard_id,
                "HashKeyRange": {"StartingHashKey": str(low), "EndingHashKey": str(high)},
                "SequenceNumberRange": {"StartingSequenceNumber": "1"},
            }
            if parent is not None:
                described["ParentShardId"] = parent
            return described

        top = 2**128 - 1
        return {
            "Shards": [
                shard("shardId-000000000000", 0, top),
                shard("shardId-000000000001", 0, top // 2, "shardId-000000000000"),
                shard("shardId-000000000002", top // 2 + 1, top, "shardId-000000000000"),
            ]
        }


@pytest.mark.parametrize("named", [(), ("shardId-000000000000", "shardId-000000000002")])
async def test_the_kinesis_reader_names_each_shards_parents(named: tuple[str, ...]) -> None:
    reader = KinesisRangeReader(_ListingKinesis(), "s", KinesisRange(), shard_ids=named)
    partitions = await reader.partitions()
    assert partitions == list(named) or (not named and len(partitions) == 3)
    assert reader.parents("shardId-000000000002") == ("shardId-000000000000",)
    assert reader.parents("shardId-000000000000") == ()
