"""``partitions_lost`` in a run's stats counts every lease the Kinesis source lost (unit level).

The source learns of a loss at a renewal or at a refused checkpoint and counts it there,
once; the pipeline's stats (and ``consume``'s final summary) take the count from it.  Before,
only losses the pipeline met at a checkpoint were counted: a lease lost while nothing of its
shard was pending went uncounted.  Waits are bounded.
"""

from __future__ import annotations

import asyncio

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.kinesis import KinesisSource, ReaderConfig
from consumers.pipeline import Pipeline, PipelineConfig
from consumers.sinks.memory import MemorySink
from tests.unit.consumers.kinesis.test_kinesis_polling_unit import FakeKinesis
from tests.unit.consumers.kinesis.test_kinesis_source_leases import until

BOUND = 5.0
FAST = ReaderConfig(lease_renew_interval=0.05, shard_discovery_interval=0.05)


async def _run_until_lost(records: int) -> tuple[KinesisSource, int]:
    store = MemoryCheckpointStore()
    source = KinesisSource(
        "s", store=store, owner="A", client=FakeKinesis([("k", b"x")] * records), config=FAST
    )
    pipeline = Pipeline(source, MemorySink(), config=PipelineConfig(checkpoint_interval=0.01))
    run = asyncio.create_task(pipeline.run())
    try:
        await until(lambda: source.shards == ["shard-0"], "A reads the shard")
        if records:
            await until(lambda: pipeline.stats.checkpoints > 0, "A checkpoints what it read")
        await store.acquire("shard-0", "B")  # worker B takes the shard over
        await until(lambda: source.shards == [], "A loses the shard at its next renewal")
    finally:
        await asyncio.wait_for(pipeline.close(), BOUND)
    stats = await asyncio.wait_for(run, BOUND)
    return source, stats.partitions_lost


async def test_a_lease_lost_with_nothing_pending_is_counted() -> None:
    source, lost = await _run_until_lost(records=0)
    assert lost == 1  # before: 0, the pipeline never tried to checkpoint the shard
    assert source.partitions_lost == 1


async def test_a_lease_lost_after_checkpoints_is_counted_once() -> None:
    source, lost = await _run_until_lost(records=5)
    assert lost == 1
    assert source.partitions_lost == 1
