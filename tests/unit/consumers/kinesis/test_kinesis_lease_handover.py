"""Leases while a stopped worker drains: they stay renewed until the source is closed.

A pipeline stops its source, then drains the writes in flight and checkpoints them, and only
then closes the source, which releases the leases.  The drain may take longer than a lease's
expiry (a throttled sink, ``drain_timeout`` unset by default); the leases must stay this
worker's meanwhile, or another worker takes them, reads the drained records again and the
last checkpoint is refused.

Runs on virtual time: the drain and another worker's patience are clock moves, not waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import cast

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.kinesis import KinesisSource, ReaderConfig
from consumers.source import SourceBatch
from shardline.records import KinesisPosition
from tests.unit.consumers.kinesis.test_kinesis_polling_unit import FakeKinesis
from tests.unit.consumers.kinesis.virtual_time import VirtualTime

BOUND = 5.0
RENEW = 1.0
EXPIRY = 3 * RENEW
CONFIG = ReaderConfig(lease_renew_interval=RENEW, shard_discovery_interval=RENEW, idle_backoff_max=RENEW)


def _source(owner: str, store: MemoryCheckpointStore, time: VirtualTime) -> KinesisSource:
    client = FakeKinesis([("k", b"x")] * 5)
    return KinesisSource(
        "s", store=store, owner=owner, client=client, config=CONFIG, clock=time.clock, sleep=time.sleep
    )


async def test_a_stopped_worker_keeps_its_leases_while_it_drains_until_it_closes() -> None:
    time = VirtualTime()
    store = MemoryCheckpointStore()
    a = _source("A", store, time)
    b = _source("B", store, time)
    a_batches = cast(AsyncGenerator[SourceBatch, None], a.batches())  # an async generator
    b_task: asyncio.Task[None] | None = None
    try:
        batch = await asyncio.wait_for(anext(a_batches), BOUND)
        position = batch.records[-1].position
        assert isinstance(position, KinesisPosition)

        async def read_b() -> None:
            async for _ in b.batches():
                pass

        b_task = asyncio.create_task(read_b())
        await time.advance(RENEW, lambda: None)
        await a.stop()
        async with asyncio.timeout(BOUND):
            async for _ in a_batches:  # what was read before the stop; then the iteration ends
                pass
        # the pipeline drains for three lease expiries; B lists the table all along
        await time.advance(3 * EXPIRY, lambda: None)
        lease = await store.get("shard-0")
        # before: A stopped renewing at the stop, and B took the lease an expiry later
        assert lease is not None and lease.owner == "A"
        assert b.shards == []
        await asyncio.wait_for(a.checkpoint("shard-0", position), BOUND)  # the last checkpoint lands
        await asyncio.wait_for(a.close(), BOUND)
        released = await store.get("shard-0")
        assert released is not None and (released.owner, released.checkpoint) == (
            None,
            position.sequence_number,
        )
        await time.advance(2 * RENEW, lambda: None)  # handed over: B takes it at its next listing
        assert b.shards == ["shard-0"]
        assert a.partitions_lost == 0
    finally:
        await a_batches.aclose()
        await a.close()
        await b.stop()
        if b_task is not None:
            await asyncio.wait_for(b_task, BOUND)
        await b.close()
