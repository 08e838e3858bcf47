"""KinesisSource over the real wire (kinesis-mock): lineage through a split and a merge while
consuming, checkpoints and resumption, enhanced fan-out mode."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.kinesis import KinesisSource, ReaderConfig
from consumers.source import SourceBatch
from shardline.records import SHARD_END, KinesisPosition
from tests.integration.efo_compat import tolerate_missing_initial_response
from tests.integration.test_kinesis_readers import async_client, create_stream, put, sync_client, wait_until
from tests.kinesis_sync import list_shards_sync

pytestmark = pytest.mark.integration

CONFIG = ReaderConfig(idle_backoff_initial=0.05, idle_backoff_max=0.2, shard_discovery_interval=0.5)


class Consumer:
    """A minimal pipeline: take every batch, checkpoint its last record, SHARD_END on the last batch."""

    def __init__(self, source: KinesisSource) -> None:
        self.source = source
        self.events: list[tuple[str, str]] = []  # ("records"|"end", shard) in delivery order
        self.records: list[tuple[str, bytes, KinesisPosition]] = []
        self.changed = asyncio.Condition()

    async def run(self) -> None:
        async for batch in self.source.batches():
            await self.take(batch)

    async def take(self, batch: SourceBatch) -> None:
        if batch.records:
            self.events.append(("records", batch.partition))
            for record in batch.records:
                assert isinstance(record.position, KinesisPosition)
                self.records.append((record.partition_key, record.data, record.position))
            await self.source.checkpoint(batch.partition, batch.records[-1].position)
        if batch.end_of_partition:
            self.events.append(("end", batch.partition))
            await self.source.checkpoint_end(batch.partition)
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 120.0) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), timeout)


def keyed_wave(wave: int, keys: int, per_key: int) -> list[tuple[str, bytes]]:
    return [(f"key-{k}", f"{wave}:{n}:{k}".encode()) for n in range(per_key) for k in range(keys)]


def reshard_and_wait(client: Any, stream: str, action: Callable[[], Any]) -> None:
    action()
    wait_until(
        lambda: (
            client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
            == "ACTIVE"
        )
    )


async def test_split_and_merge_while_consuming(kinesis_endpoint: str) -> None:
    client = sync_client(kinesis_endpoint)
    stream = create_stream(client, 2)
    store = MemoryCheckpointStore()
    waves = [keyed_wave(w, keys=16, per_key=10) for w in range(3)]
    total = sum(len(w) for w in waves)
    put(client, stream, waves[0])
    async with async_client(kinesis_endpoint) as aclient:
        source = KinesisSource(stream, store=store, owner="worker-1", client=aclient, config=CONFIG)
        consumer = Consumer(source)
        running = asyncio.create_task(consumer.run())
        await consumer.wait_for(lambda: len(consumer.records) >= len(waves[0]))

        first = sorted(s.shard_id for s in list_shards_sync(client, stream_name=stream))
        await asyncio.to_thread(
            reshard_and_wait,
            client,
            stream,
            lambda: client.split_shard(
                StreamName=stream, ShardToSplit=first[0], NewStartingHashKey=str(2**126)
            ),
        )
        await asyncio.to_thread(put, client, stream, waves[1])
        children = sorted(
            s.shard_id for s in list_shards_sync(client, stream_name=stream) if s.parent_shard_id == first[0]
        )
        assert len(children) == 2
        await asyncio.to_thread(
            reshard_and_wait,
            client,
            stream,
            lambda: client.merge_shards(
                StreamName=stream, ShardToMerge=children[0], AdjacentShardToMerge=children[1]
            ),
        )
        await asyncio.to_thread(put, client, stream, waves[2])
        await consumer.wait_for(lambda: len(consumer.records) >= total)
        await source.stop()
        await asyncio.wait_for(running, 30)

    # nothing lost, nothing delivered twice
    assert sorted(data for _, data, _ in consumer.records) == sorted(d for w in waves for _, d in w)
    # every parent ended (and was checkpointed SHARD_END) before any child delivered a record
    shards = {s.shard_id: s for s in list_shards_sync(client, stream_name=stream)}
    for shard in shards.values():
        delivered = [i for i, e in enumerate(consumer.events) if e == ("records", shard.shard_id)]
        child_first = delivered[0] if delivered else None
        if child_first is None:
            continue
        for parent in shard.parents:
            assert ("end", parent) in consumer.events
            assert consumer.events.index(("end", parent)) < child_first
    leases = {lease.shard_id: lease for lease in await store.list()}
    for closed in (first[0], *children):
        assert leases[closed].checkpoint == SHARD_END
    # per-key order holds across the lineage: wave, then counter, strictly increasing per key
    seen: dict[str, tuple[int, int]] = {}
    for key, data, _ in consumer.records:
        wave, n, _k = (int(x) for x in data.decode().split(":"))
        assert (wave, n) > seen.get(key, (-1, -1)), key
        seen[key] = (wave, n)


async def test_restart_resumes_after_checkpoint(kinesis_endpoint: str) -> None:
    client = sync_client(kinesis_endpoint)
    stream = create_stream(client, 2)
    store = MemoryCheckpointStore()
    first, second = keyed_wave(0, 8, 10), keyed_wave(1, 8, 10)
    put(client, stream, first)
    async with async_client(kinesis_endpoint) as aclient:
        source = KinesisSource(stream, store=store, owner="worker-1", client=aclient, config=CONFIG)
        consumer = Consumer(source)
        running = asyncio.create_task(consumer.run())
        await consumer.wait_for(lambda: len(consumer.records) >= len(first))
        await source.close()
        await asyncio.wait_for(running, 30)
        assert all(lease.owner is None for lease in await store.list())  # close gave the leases up

        put(client, stream, second)
        again = KinesisSource(stream, store=store, owner="worker-2", client=aclient, config=CONFIG)
        resumed = Consumer(again)
        running = asyncio.create_task(resumed.run())
        await resumed.wait_for(lambda: len(resumed.records) >= len(second))
        await again.stop()
        await asyncio.wait_for(running, 30)
    assert sorted(d for _, d, _ in resumed.records) == sorted(d for _, d in second)
    assert {lease.owner for lease in await store.list()} == {"worker-2"}


async def test_latest_start_skips_history(kinesis_endpoint: str) -> None:
    from consumers.kinesis import LATEST

    client = sync_client(kinesis_endpoint)
    stream = create_stream(client, 1)
    put(client, stream, [("old", b"old")])
    started = asyncio.Event()

    class Started:
        def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
            if name == "get_records_calls":  # the first call made from a LATEST iterator
                started.set()

    async with async_client(kinesis_endpoint) as aclient:
        source = KinesisSource(
            stream,
            store=MemoryCheckpointStore(),
            owner="w",
            client=aclient,
            config=CONFIG,
            start=LATEST,
            observer=Started(),
        )
        consumer = Consumer(source)
        running = asyncio.create_task(consumer.run())
        await asyncio.wait_for(started.wait(), 60)
        put(client, stream, [("new", b"new")])
        await consumer.wait_for(lambda: len(consumer.records) >= 1)
        await source.stop()
        await asyncio.wait_for(running, 30)
    assert [d for _, d, _ in consumer.records] == [b"new"]


async def test_fan_out_source_reads_every_shard(kinesis_endpoint: str) -> None:
    client = sync_client(kinesis_endpoint)
    stream = create_stream(client, 2)
    entries = keyed_wave(0, 8, 20)
    put(client, stream, entries)
    with tolerate_missing_initial_response():
        async with async_client(kinesis_endpoint) as aclient:
            source = KinesisSource(
                stream,
                store=MemoryCheckpointStore(),
                owner="w",
                client=aclient,
                config=CONFIG,
                mode="efo",
                consumer_name=f"app-{uuid.uuid4().hex[:8]}",
            )
            consumer = Consumer(source)
            running = asyncio.create_task(consumer.run())
            await consumer.wait_for(lambda: len(consumer.records) >= len(entries))
            await source.stop()
            await asyncio.wait_for(running, 30)
    assert sorted(d for _, d, _ in consumer.records) == sorted(d for _, d in entries)
