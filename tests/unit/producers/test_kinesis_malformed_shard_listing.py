"""A malformed ListShards answer during a refresh leaves a running producer working on the
map it has (the refresh fails with a typed, transient error) instead of ending it."""

from __future__ import annotations

from producers.kinesis import KinesisProducer
from shardline.errors import TransientServiceError
from tests.unit.producers.fake_kinesis import FakeKinesis

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}


async def test_a_refresh_reading_a_malformed_listing_keeps_the_producer_and_its_map() -> None:
    fake = FakeKinesis(2)
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        before = producer.shard_map
        good = fake.shards
        fake.shards = [{"ShardId": "x"}, *good]  # no hash-key range
        try:
            await producer.refresh_shard_map()
        except TransientServiceError:
            pass
        else:
            raise AssertionError("a malformed listing was taken as a shard map")
        fake.shards = good
        assert producer.shard_map is before
        ack = await (await producer.send(b"x", partition_key="k"))
        await producer.flush()
    assert ack.shard_id in {s["ShardId"] for s in good}
