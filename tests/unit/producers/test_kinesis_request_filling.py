"""Requests carry many entries: closed aggregates wait for company until their records linger.

The KPL's RecordMaxBufferedTime bounds how long a record waits for a request, not only for
its aggregate; a producer that sent every aggregate the moment it filled made one PutRecords
call per aggregate (measured in stream-bench: 1.8 entries a request, about 8 CPU-us per record
in botocore and aiohttp alone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from producers import KinesisProducer
from shardline.aggregation import deaggregate
from shardline.limits import KiB
from tests.unit.producers.fake_kinesis import FakeKinesis

_T = TypeVar("_T")


async def bounded(awaitable: Awaitable[_T]) -> _T:
    return await asyncio.wait_for(awaitable, 10)


async def _let_the_sender_run() -> None:
    """Give the sender task its turns (no time passes: the producer's clock is frozen)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_full_aggregates_wait_for_the_linger_and_leave_in_one_request() -> None:
    fake = FakeKinesis(shards=1)
    now = [0.0]
    async with KinesisProducer(
        "s", client=fake, clock=lambda: now[0], linger=0.05, rate_limit_percent=None
    ) as producer:
        chunk = [bytes([i]) * (20 * KiB) for i in range(3)]
        futures = []
        for _ in range(4):  # each call fills an aggregate or more; the sender runs in between
            futures.append(await producer.send_many(chunk, ["k"] * len(chunk)))
            await _let_the_sender_run()
        assert fake.calls == []  # full aggregates, but no record has lingered yet
        now[0] = 0.05
        acks = [await bounded(future) for future in futures]
    assert all(not batch.failed for batch in acks)
    assert len(fake.calls) == 1
    assert len(fake.calls[0]) >= 4
    assert sum(len(deaggregate(e["Data"]) or [e]) for e in fake.calls[0]) == 12


async def test_a_paced_backlog_does_not_close_other_shards_aggregates_early() -> None:
    fake = FakeKinesis(shards=2)
    now = [0.0]
    producer = KinesisProducer(
        "s",
        client=fake,
        clock=lambda: now[0],
        linger=0.05,
        max_batch_entries=3,
        rate_limit_percent=1.0,  # 10 KiB/s a shard: one 40 KiB record leaves, the rest wait
    )
    await producer.start()
    hot_key, cold_key = _keys_on_distinct_shards(producer, 2)
    hot = await producer.send_many([b"h" * (40 * KiB)] * 6, [hot_key] * 6)
    await _let_the_sender_run()
    now[0] = 0.05  # the hot records lingered; one leaves, five wait for rate tokens
    await bounded(_until(lambda: len(fake.written) == 1))
    cold = []
    for i in range(10):  # the sender runs between the records
        cold.append(await producer.send(b"c%d" % i, partition_key=cold_key))
        await _let_the_sender_run()
    now[0] = 0.10  # the cold aggregate lingered: it goes whole, as one entry
    cold_acks = [await bounded(future) for future in cold]
    await bounded(producer.close(timeout=0.1))  # the frozen clock never refills the hot budget
    assert len((await bounded(hot)).failed) == 5
    cold_entries = [e for _, e in fake.written if e["PartitionKey"] == cold_key]
    assert len(cold_entries) == 1
    assert len({ack.sequence_number for ack in cold_acks}) == 1


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0)


async def test_when_the_oldest_record_lingers_every_open_aggregate_rides_along() -> None:
    """A stream of many quiet shards: each aggregate opened at its own moment, and closed one by
    one as each lingered, they left one per request (2,558 one-entry PutRecords calls for
    10,000 records over 64 shards in stream-bench).  The first linger takes them all along."""
    fake = FakeKinesis(shards=3)
    now = [0.0]
    async with KinesisProducer(
        "s", client=fake, clock=lambda: now[0], linger=0.05, rate_limit_percent=None
    ) as producer:
        futures = []
        for i, key in enumerate(_keys_on_distinct_shards(producer, 3)):
            now[0] = 0.02 * i  # aggregates opened at 0, 0.02 and 0.04
            futures.append(await producer.send(b"r%d" % i, partition_key=key))
            await _let_the_sender_run()
        assert fake.calls == []
        now[0] = 0.05  # only the first record has lingered
        first = await bounded(futures[0])
        assert len(fake.calls) == 1
        assert len(fake.calls[0]) == 3  # the younger aggregates went in the same request
        rest = [await bounded(future) for future in futures[1:]]
    assert len({ack.shard_id for ack in [first, *rest]}) == 3


def _keys_on_distinct_shards(producer: KinesisProducer, count: int) -> list[str]:
    by_shard: dict[str, str] = {}
    for i in range(1000):
        key = f"key-{i}"
        by_shard.setdefault(producer.shard_map.shard_for_key(key).shard_id, key)
    assert len(by_shard) >= count
    return [by_shard[shard] for shard in sorted(by_shard)[:count]]
