"""``partitions_lost`` in a run's stats counts every lease the Kinesis source lost (unit level).

The source learns of a loss at a renewal or at a refused checkpoint and counts it there,
once; the pipeline's stats (and ``consume``'s final summary) take the count from it.  Before,
only losses the pipeline met at a checkpoint were counted: a lease lost while nothing of its
shard was pending went uncounted.  Waits are bounded.
"""

from __future__ import annotations

import asyncio

import pytest

from consumers.checkpoint.base import Lease
from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.kinesis import KinesisSource, ReaderConfig
from consumers.pipeline import Pipeline, PipelineConfig
from consumers.sinks.memory import MemorySink
from shardline.errors import LeaseLostError
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


class HeldRenewals(MemoryCheckpointStore):
    """Holds a renewal, once ``hold`` is set, until ``resume`` is: a store answering slowly."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.renewing = asyncio.Event()
        self.resume = asyncio.Event()

    async def renew(self, lease: Lease) -> Lease:
        if self.hold:
            self.renewing.set()
            await self.resume.wait()
        return await super().renew(lease)


async def test_a_checkpoint_waiting_on_the_renewal_that_finds_the_loss_does_not_count_it_again() -> None:
    # The checkpoint waited for the shard's lock while the renewal learnt of the loss; it then
    # wrote with the lost lease, was refused, and counted the same loss a second time (a worker
    # continued after a pause logged "lease lost" twice for one shard).
    store = HeldRenewals()
    source = KinesisSource("s", store=store, owner="A", client=FakeKinesis([("k", b"x")] * 3), config=FAST)
    batches = aiter(source.batches())
    try:
        batch = await asyncio.wait_for(anext(batches), BOUND)
        store.hold = True
        await asyncio.wait_for(store.renewing.wait(), BOUND)  # the renewal holds the shard's lock
        await store.acquire("shard-0", "B")  # worker B takes the shard over meanwhile
        waiting = asyncio.Event()

        async def checkpoint() -> bool:
            waiting.set()  # what follows runs on, up to the wait for the shard's lock
            return await source.checkpoint("shard-0", batch.records[-1].position)

        checkpointing = asyncio.ensure_future(checkpoint())
        await asyncio.wait_for(waiting.wait(), BOUND)
        store.resume.set()
        with pytest.raises(LeaseLostError):
            await asyncio.wait_for(checkpointing, BOUND)
        assert source.partitions_lost == 1
    finally:
        await asyncio.wait_for(source.close(), BOUND)
        await asyncio.wait_for(batches.aclose(), BOUND)
