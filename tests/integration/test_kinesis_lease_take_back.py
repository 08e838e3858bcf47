"""Two Kinesis consumers on one DynamoDB lease table over the wire (kinesis-mock + moto).

Worker A reads a shard, its renewals stop reaching the table for a while, and worker B takes
the lease A's counter left standing; A loses the shard at its next renewal.  While B renews,
A never takes the shard back, however long it waits.  Then B dies without releasing its
lease; A takes the shard back once B's counter stood still for the expiry and reads on from
B's checkpoint.  Every record reaches a sink (at-least-once), and A's second hold starts
after B's checkpoint, not at A's own.  Renewals run every 0.2 s, so the expiry is 0.6 s and
the whole scenario takes a few seconds; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import replace

import pytest

from consumers.checkpoint.base import Lease
from consumers.checkpoint.dynamodb import DynamoDBCheckpointStore
from consumers.kinesis import KinesisSource
from consumers.pipeline import Pipeline, PipelineConfig
from consumers.sinks.memory import MemorySink
from tests.integration.test_kinesis_readers import async_client, create_stream, put, sync_client
from tests.integration.test_kinesis_source import CONFIG

pytestmark = pytest.mark.integration

FAST_LEASES = replace(CONFIG, lease_renew_interval=0.2, shard_discovery_interval=0.2)
EXPIRY = 3 * FAST_LEASES.lease_renew_interval
BOUND = 30.0


class MutedRenewals(DynamoDBCheckpointStore):
    """A's store: while ``muted``, a renewal answers as if written but never reaches the table
    (its counter stands still, as when the worker's renewals are lost on the way)."""

    muted = False

    async def renew(self, lease: Lease) -> Lease:
        if self.muted:
            return lease
        return await super().renew(lease)


class DiesWithoutReleasing(DynamoDBCheckpointStore):
    """B's store: once ``dead``, nothing it holds is released (a process killed -9)."""

    dead = False

    async def release(self, lease: Lease) -> None:
        if not self.dead:
            await super().release(lease)


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(BOUND):
        while not condition():
            await asyncio.sleep(0.05)
    assert condition(), what


def seen(sink: MemorySink) -> set[bytes]:
    return set(sink.items.values())


async def test_a_lost_shard_is_taken_back_from_a_dead_holder_never_from_a_live_one(
    kinesis_endpoint: str, moto_endpoint: str
) -> None:
    kinesis = sync_client(kinesis_endpoint)
    stream = create_stream(kinesis, 1)
    table = f"leases-take-back-{uuid.uuid4().hex[:8]}"
    waves = [[(f"key-{n}", f"{wave}:{n}".encode()) for n in range(10)] for wave in range(3)]
    store_a = MutedRenewals(table, endpoint_url=moto_endpoint, create_table=True)
    store_b = DiesWithoutReleasing(table, endpoint_url=moto_endpoint, create_table=True)
    config = PipelineConfig(checkpoint_interval=0.1)
    sink_a, sink_b = MemorySink(), MemorySink()
    put(kinesis, stream, waves[0])
    try:
        async with async_client(kinesis_endpoint) as client:
            source_a = KinesisSource(stream, store=store_a, owner="A", client=client, config=FAST_LEASES)
            pipeline_a = Pipeline(source_a, sink_a, config=config)
            run_a = asyncio.create_task(pipeline_a.run())
            source_b = KinesisSource(stream, store=store_b, owner="B", client=client, config=FAST_LEASES)
            pipeline_b = Pipeline(source_b, sink_b, config=config)
            run_b: asyncio.Task[object] | None = None
            try:
                await until(lambda: seen(sink_a) >= {data for _, data in waves[0]}, "A reads the first wave")
                [shard] = source_a.shards
                # A's renewals stop reaching the table: B takes the lease once its counter stood still
                store_a.muted = True
                run_b = asyncio.create_task(pipeline_b.run())
                await until(lambda: source_b.shards == [shard], "B takes the lease A stopped renewing")
                store_a.muted = False
                await until(lambda: source_a.shards == [], "A loses the shard at its next renewal")

                last_of_wave_1 = put(kinesis, stream, waves[1])[-1]["SequenceNumber"]
                await until(lambda: seen(sink_b) >= {data for _, data in waves[1]}, "B reads the second wave")
                # B renews: however many expiries pass, A never takes the shard back
                lease = await store_b.get(shard)
                assert lease is not None
                for _ in range(3):
                    counter = lease.counter
                    await asyncio.sleep(EXPIRY)  # a span of time the assertion is about, not a sync point
                    lease = await store_b.get(shard)
                    assert lease is not None and lease.owner == "B" and lease.counter > counter
                    assert source_a.shards == []
                async with asyncio.timeout(BOUND):
                    while not (lease := await store_b.get(shard)) or lease.checkpoint != last_of_wave_1:
                        await asyncio.sleep(0.05)
                # B dies without releasing: A takes the shard back and reads on from B's checkpoint
                store_b.dead = True
                run_b.cancel()
                await asyncio.gather(run_b, return_exceptions=True)
                run_b = None
                held_by_b = await store_b.get(shard)
                assert held_by_b is not None and held_by_b.owner == "B"
                last_of_wave_2 = put(kinesis, stream, waves[2])[-1]["SequenceNumber"]
                await until(
                    lambda: source_a.shards == [shard], "A takes the lease back once B stopped renewing"
                )
                await until(lambda: seen(sink_a) >= {data for _, data in waves[2]}, "A reads the third wave")
            finally:
                if run_b is not None:
                    run_b.cancel()
                    await asyncio.gather(run_b, return_exceptions=True)
                await asyncio.wait_for(pipeline_a.close(), BOUND)
                await asyncio.wait_for(run_a, BOUND)
        final = await store_a.get(shard)
    finally:
        await store_a.close()
        await store_b.close()
    everything = {data for wave in waves for _, data in wave}
    assert seen(sink_a) | seen(sink_b) == everything  # at-least-once: nothing lost
    # A's second hold started at B's checkpoint, not at its own: B's wave was not read again
    assert not seen(sink_a) & {data for _, data in waves[1]}
    # A checkpointed its second hold and released it on its way out
    assert final is not None and (final.owner, final.checkpoint) == (None, last_of_wave_2)
