"""One producer's aggregate builders share one set of encoding caches, so the memory they hold
is bounded per producer, not multiplied by the shard count (a producer over 64 shards and a
million device keys once cached an encoded entry for nearly every key)."""

from __future__ import annotations

import asyncio
import tracemalloc

from producers import KinesisProducer
from shardline.aggregation import AggregateBuilder, AggregationCaches, deaggregate
from tests.unit.producers.fake_kinesis import FakeKinesis


async def test_many_shards_and_keys_cache_a_bounded_number_of_key_entries() -> None:
    keys = [f"device-{i:06d}" for i in range(80_000)]  # distinct keys, spread over 64 shards
    datas = [b"x" * 20] * len(keys)
    fake = FakeKinesis(shards=64)
    async with KinesisProducer("s", client=fake, linger=0.001, rate_limit_percent=None) as producer:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for start in range(0, len(keys), 10_000):
                acks = await asyncio.wait_for(
                    await producer.send_many(datas[start : start + 10_000], keys[start : start + 10_000]), 30
                )
                assert acks.ok
            fake.calls.clear()
            fake.written.clear()
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    # separate caches held 80,000 entries (~7 MB); one shared set holds at most 16,384
    assert held < 4 * 1024 * 1024, f"{held / 1e6:.1f} MB held after every record was acknowledged"


def test_builders_sharing_caches_encode_the_same_bytes_as_builders_alone() -> None:
    caches = AggregationCaches()
    shared = [AggregateBuilder(caches=caches), AggregateBuilder(caches=caches)]
    alone = [AggregateBuilder(), AggregateBuilder()]
    records = [(f"k{i % 7}", bytes([i]) * (i % 5 + 1)) for i in range(40)]
    for builders in (shared, alone):
        for i, (key, data) in enumerate(records):
            assert builders[i % 2].try_add(key, data)
        keys = [key for key, _ in records]
        datas = [data for _, data in records]
        builders[0].add_records(keys, datas, range(len(records)))
    for mine, theirs in zip(shared, alone, strict=True):
        assert mine.encode() == theirs.encode()
        assert [(r.partition_key, r.data) for r in deaggregate(mine.encode()) or []] == [
            (r.partition_key, r.data) for r in deaggregate(theirs.encode()) or []
        ]
