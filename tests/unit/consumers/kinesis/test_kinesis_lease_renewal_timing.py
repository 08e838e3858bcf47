"""How long a worker whose lease renewals are slow goes on reading shards it may not hold.

Another worker takes a lease once its counter stood still for the expiry.  A renewal that is
slow to answer (a throttled lease table, retries, a connection that hangs until its read
timeout) must neither hold the other shards' renewals back nor let this worker read on past
the expiry: by then the shard may be another worker's.  Runs on virtual time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from consumers.checkpoint.base import Lease
from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.kinesis import KinesisSource, ReaderConfig
from consumers.source import SourceBatch
from shardline.errors import CheckpointError, TransientServiceError
from tests.unit.consumers.kinesis.test_kinesis_source_leases import TwoShards
from tests.unit.consumers.kinesis.virtual_time import VirtualTime

BOUND = 5.0
RENEW = 1.0
EXPIRY = 3 * RENEW
CONFIG = ReaderConfig(lease_renew_interval=RENEW, shard_discovery_interval=RENEW, idle_backoff_max=RENEW)


class SlowToAnswer(MemoryCheckpointStore):
    """Renewals of ``slow_shards`` by ``slow_owner`` are applied at once, answered ``delay`` later."""

    def __init__(self, time: VirtualTime, slow_owner: str, slow_shards: set[str], delay: float) -> None:
        super().__init__()
        self.time = time
        self.slow_owner = slow_owner
        self.slow_shards = slow_shards
        self.delay = delay
        self.failing: set[str] = set()
        self.taken_while_read: list[str] = []
        self.reader: KinesisSource | None = None
        self.reading: asyncio.Task[Any] | None = None

    async def renew(self, lease: Lease) -> Lease:
        if lease.shard_id in self.failing:
            raise TransientServiceError("the lease table is throttling this shard's renewals")
        renewed = await super().renew(lease)
        if lease.owner == self.slow_owner and lease.shard_id in self.slow_shards:
            await self.time.sleep(self.delay)
        return renewed

    async def acquire(self, shard_id: str, owner: str, *, expected: Lease | None = None) -> Lease:
        taken = await super().acquire(shard_id, owner, expected=expected)
        reader, reading = self.reader, self.reading
        if owner != self.slow_owner and reader is not None and reading is not None and not reading.done():
            # the worker still reads (its batches not ended) a shard another one just took
            self.taken_while_read += [shard_id] if shard_id in reader.shards else []
        return taken


def _source(owner: str, store: MemoryCheckpointStore, time: VirtualTime) -> KinesisSource:
    client = TwoShards([("k", b"x")] * 5)
    return KinesisSource(
        "s", store=store, owner=owner, client=client, config=CONFIG, clock=time.clock, sleep=time.sleep
    )


async def _drain(source: KinesisSource) -> None:
    async for _ in source.batches():
        pass


async def test_a_slow_renewal_never_lets_the_worker_read_a_shard_another_worker_took() -> None:
    time = VirtualTime()
    store = SlowToAnswer(time, "A", {"shard-0"}, delay=2.5 * RENEW)
    a = _source("A", store, time)
    b = _source("B", store, time)
    store.reader = a
    store.reading = a_task = asyncio.create_task(_drain(a))
    await time.advance(0.0, lambda: None)
    assert a.shards == ["shard-0", "shard-1"]
    b_task = asyncio.create_task(_drain(b))
    try:
        await time.advance(4 * EXPIRY, lambda: None)
        # before: shard-1 was renewed only after shard-0's slow answer, a round every 3.5 s:
        # B took it while A read on, and shard-0 too, A still reading it until its next round
        assert store.taken_while_read == []
        # A gives up once a lease went unconfirmed for the expiry, its renewal unanswered
        assert a_task.done()
        with pytest.raises(CheckpointError, match="shard-0"):
            a_task.result()
        assert sorted(b.shards) == ["shard-0", "shard-1"]  # and B takes both over
    finally:
        await a.close()
        await b.stop()
        await asyncio.wait_for(b_task, BOUND)
        await b.close()
        a_task.cancel()
        await asyncio.gather(a_task, return_exceptions=True)


async def test_slow_renewals_of_several_shards_do_not_add_up() -> None:
    time = VirtualTime()
    # each answered within the expiry: A keeps both leases, and B, watching, takes neither
    store = SlowToAnswer(time, "A", {"shard-0", "shard-1"}, delay=1.5 * RENEW)
    a = _source("A", store, time)
    b = _source("B", store, time)
    store.reader = a
    store.reading = a_task = asyncio.create_task(_drain(a))
    await time.advance(0.0, lambda: None)
    b_task = asyncio.create_task(_drain(b))
    try:
        await time.advance(4 * EXPIRY, lambda: None)
        # before: renewed one after the other, a round took 1.5 s more for every slow shard,
        # and each counter stood still for 4 s: B took both while A read on
        assert store.taken_while_read == []
        assert not a_task.done()
        assert sorted(a.shards) == ["shard-0", "shard-1"] and b.shards == []
    finally:
        await a.stop()
        await asyncio.wait_for(a_task, BOUND)
        closing = asyncio.ensure_future(a.close())
        await time.advance(2 * RENEW, lambda: None)  # a renewal still unanswered gets its answer
        await asyncio.wait_for(closing, BOUND)
        await b.stop()
        await asyncio.wait_for(b_task, BOUND)
        await b.close()


async def test_a_renewal_failing_for_good_lets_the_others_in_flight_finish() -> None:
    time = VirtualTime()
    store = SlowToAnswer(time, "A", {"shard-1"}, delay=0.5 * RENEW)
    store.failing.add("shard-0")
    a = _source("A", store, time)
    received: list[SourceBatch] = []

    async def pump() -> None:
        async for batch in a.batches():
            received.append(batch)

    task = asyncio.create_task(pump())
    try:
        # shard-0's renewals fail until its lease is past the expiry, at a round where
        # shard-1's renewal was applied and is on its way back
        await time.advance(2 * EXPIRY, lambda: None)
        assert task.done()
        with pytest.raises(CheckpointError, match="shard-0"):
            task.result()
        position = next(batch for batch in received if batch.partition == "shard-1").records[-1].position
        # the pipeline's last checkpoint: before, shard-1's renewal was cancelled with its
        # write applied, and this checkpoint under the lease held in memory was refused
        await asyncio.wait_for(a.checkpoint("shard-1", position), BOUND)
        lease = await store.get("shard-1")
        assert lease is not None and lease.owner == "A"
        assert a.partitions_lost == 0
    finally:
        closing = asyncio.ensure_future(a.close())
        await time.advance(RENEW, lambda: None)
        await asyncio.wait_for(closing, BOUND)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
