"""Reader tasks that meet a ``CancelledError`` nobody sent hand it to their owner.

Such a task used to re-raise it and end as "cancelled", unnoticed: a Kinesis shard stopped
being read while its lease was still renewed (the run went on for ever), a replay job
reported success with a partition unfinished, ``shardline tail`` stopped following a shard.
Every wait here is bounded, so a hang fails the test instead of sticking.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.kinesis import KinesisSource, ReaderConfig
from consumers.kinesis.positions import TRIM_HORIZON
from consumers.pipeline import Pipeline, PipelineConfig
from consumers.replay.job import ReplayJob
from consumers.sinks.memory import MemorySink
from consumers.tail.kinesis import KinesisFollower
from shardline.errors import BackgroundTaskError
from shardline.records import ConsumedRecord
from tests.unit.consumers.kinesis.test_kinesis_polling_unit import FakeKinesis
from tests.unit.consumers.test_pipeline_supervision import ListReader, _replay_records

BOUND = 5.0  # seconds; every scenario finishes in milliseconds when nothing hangs


class CancelledInsideKinesis(FakeKinesis):
    """GetRecords past the second record raises ``CancelledError`` (an HTTP library's own
    timeout), without anyone cancelling the call."""

    async def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        if int(ShardIterator) >= 2:
            raise asyncio.CancelledError
        return await super().get_records(ShardIterator, Limit)


def _cause_is_a_cancel(error: BaseException) -> bool:
    return isinstance(error.__cause__, asyncio.CancelledError)


async def test_a_kinesis_shard_reader_cancelled_inside_its_client_fails_the_run() -> None:
    client = CancelledInsideKinesis([(f"k{i}", b"x") for i in range(5)], limit=2)
    source = KinesisSource("s", store=MemoryCheckpointStore(), owner="w", client=client)
    sink = MemorySink()
    pipeline = Pipeline(source, sink, config=PipelineConfig(checkpoint_interval=3600))
    with pytest.raises(BackgroundTaskError, match="shard-0") as raised:
        await asyncio.wait_for(pipeline.run(), BOUND)  # before: ran on with the shard unread
    assert _cause_is_a_cancel(raised.value)
    assert len(sink.items) == 2  # what was read before is written and checkpointed
    assert source.shards == []  # the lease was given up at close


async def test_kinesis_lease_renewal_cancelled_inside_the_store_fails_the_run() -> None:
    class CancelledInsideStore(MemoryCheckpointStore):
        async def renew(self, lease: Any) -> Any:
            raise asyncio.CancelledError

    client = FakeKinesis([(f"k{i}", b"x") for i in range(3)])
    source = KinesisSource(
        "s",
        store=CancelledInsideStore(),
        owner="w",
        client=client,
        config=ReaderConfig(lease_renew_interval=0.01),
    )
    with pytest.raises(BackgroundTaskError, match="lease renewal") as raised:
        await asyncio.wait_for(Pipeline(source, MemorySink()).run(), BOUND)
    assert _cause_is_a_cancel(raised.value)


class CancelledInsideReader(ListReader):
    """Reading ``p1`` past its first batch raises ``CancelledError`` nobody sent."""

    async def read(
        self, partition: str, after: str | None
    ) -> AsyncIterator[tuple[Sequence[ConsumedRecord], str]]:
        async for item in super().read(partition, after):
            yield item
            if partition == "p1":
                raise asyncio.CancelledError


async def test_a_replay_partition_reader_cancelled_inside_fails_the_job() -> None:
    reader = CancelledInsideReader({"p0": _replay_records("p0", 4), "p1": _replay_records("p1", 4)})
    store = MemoryCheckpointStore()
    job = ReplayJob(reader, MemorySink(), store, concurrency=2)
    with pytest.raises(BackgroundTaskError, match="p1") as raised:
        await asyncio.wait_for(job.run(), BOUND)  # before: a summary, as if every record was read
    assert _cause_is_a_cancel(raised.value)
    leases = {lease.shard_id: lease for lease in await store.list()}
    assert not leases["p1"].is_shard_end


async def test_a_tail_shard_reader_cancelled_inside_its_client_ends_the_follower() -> None:
    client = CancelledInsideKinesis([(f"k{i}", b"x") for i in range(5)], limit=2)
    follower = KinesisFollower(client, "s", TRIM_HORIZON)

    async def follow() -> int:
        count = 0
        async for item in follower.batches():
            count += len(getattr(item, "records", ()))
        return count

    with pytest.raises(BackgroundTaskError, match="shard-0") as raised:
        await asyncio.wait_for(follow(), BOUND)  # before: waited for ever on a dead reader
    assert _cause_is_a_cancel(raised.value)
