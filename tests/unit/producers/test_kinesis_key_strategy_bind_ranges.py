"""A range-aware key strategy whose ``bind_ranges`` raises is user code failing: the shard map
change it is told about still takes effect (buffer re-planned), the producer keeps running
(also when the periodic refresh is the one that meets it), and start() refuses a strategy
that cannot take the stream's first ranges with a typed error."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from producers.kinesis import KinesisProducer
from shardline.aggregation import deaggregate
from shardline.errors import ConfigurationError
from shardline.shardmath import partition_key_hash
from tests.unit.producers.fake_kinesis import FakeKinesis, hash_range


class Fussy:
    """Keys by the record's own bytes; takes the first ranges it is given, raises on later ones."""

    def __init__(self, accept: int = 1) -> None:
        self.accept = accept
        self.offered = 0
        self.refused = asyncio.Event()

    def bind_ranges(self, ranges: Sequence[tuple[int, int]]) -> None:
        self.offered += 1
        if self.offered > self.accept:
            self.refused.set()
            raise ValueError("cannot take these ranges")

    def __call__(self, value: Any) -> str:
        return bytes(value).decode()


def in_range_copies(fake: FakeKinesis) -> tuple[int, int]:
    """(user records written, of them inside the hash range of the shard they were written to)."""
    ranges = {str(s["ShardId"]): hash_range(s) for s in fake.shards}
    total = inside = 0
    for shard_id, entry in fake.written:
        low, high = ranges[shard_id]
        users = deaggregate(entry["Data"]) or []
        for user in users:
            total += 1
            inside += low <= partition_key_hash(user.partition_key) <= high
    return total, inside


async def test_a_refused_bind_still_replans_the_buffer_and_keeps_the_producer() -> None:
    fake = FakeKinesis(1)
    strategy = Fussy()
    async with KinesisProducer("s", client=fake, key_strategy=strategy, linger=30.0) as producer:
        futures = [await producer.send(f"key-{i}".encode()) for i in range(40)]  # one open aggregate
        fake.split_the_only_shard()
        assert await producer.refresh_shard_map() is True
        await producer.flush()
        acks = [await future for future in futures]
        later_future = await producer.send(b"key-x")
        await producer.flush()
        later = await later_future
    assert strategy.offered == 2
    # re-planned before sending: every record went once, inside its shard's range
    assert in_range_copies(fake) == (40, 40)
    assert {ack.shard_id for ack in acks} == {"left", "right"}
    assert later.shard_id in {"left", "right"}


async def test_the_periodic_refresh_meeting_a_refused_bind_does_not_end_the_producer() -> None:
    now = [0.0]
    fake = FakeKinesis(1)
    strategy = Fussy()
    async with KinesisProducer(
        "s", client=fake, key_strategy=strategy, linger=0.01, shard_refresh_interval=5.0, clock=lambda: now[0]
    ) as producer:
        fake.split_the_only_shard()
        now[0] = 10.0  # the next sender pass starts the periodic refresh
        first = await producer.send(b"key-1")
        await asyncio.wait_for(strategy.refused.wait(), 5)
        for _ in range(5):  # let the refresh task end and its owner look at it
            await asyncio.sleep(0)
        second = await producer.send(b"key-2")
        await producer.flush()  # (the clock stands still: nothing lingers out by itself)
        assert (await first).shard_id in {"left", "right"}
        assert (await second).shard_id in {"left", "right"}


async def test_start_refuses_a_strategy_that_cannot_take_the_first_ranges() -> None:
    producer = KinesisProducer("s", client=FakeKinesis(2), key_strategy=Fussy(accept=0))
    with pytest.raises(ConfigurationError, match="bind_ranges"):
        await producer.start()
