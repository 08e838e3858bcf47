"""Per-record ``send()``'s own fast path: its key-to-shard cache and its run-free buffer append."""

from __future__ import annotations

from producers import KinesisProducer
from shardline.aggregation import deaggregate
from shardline.shardmath import partition_key_hash
from tests.unit.producers.fake_kinesis import FakeKinesis


def _user_records(fake: FakeKinesis) -> list[tuple[str, str, bytes]]:
    """(shard, partition key, data) of every user record written, de-aggregated."""
    out = []
    for shard_id, entry in fake.written:
        users = deaggregate(entry["Data"])
        if users is None:
            out.append((shard_id, entry["PartitionKey"], entry["Data"]))
        else:
            out.extend((shard_id, user.partition_key, user.data) for user in users)
    return out


async def test_send_after_a_split_routes_cached_keys_to_the_new_shards() -> None:
    """Keys send() already routed under the old map must not keep their old shard id."""
    fake = FakeKinesis(shards=1)
    keys = [f"k{i}" for i in range(40)]
    async with KinesisProducer("s", client=fake, linger=60, rate_limit_percent=None) as producer:
        before = [await producer.send(b"before", partition_key=key) for key in keys]
        half = fake.split_the_only_shard()
        assert await producer.refresh_shard_map()
        after = [await producer.send(b"after", partition_key=key) for key in keys]
        await producer.flush()
        acks = [await future for future in [*before, *after]]
    assert {ack.shard_id for ack in acks[len(keys) :]} == {"left", "right"}
    written = _user_records(fake)
    assert len(written) == 2 * len(keys)
    for shard_id, key, _ in written:
        assert shard_id == ("left" if partition_key_hash(key) < half else "right")


async def test_an_unchanged_listing_keeps_the_map_in_use_and_its_routes() -> None:
    """The periodic check nearly always finds the same shards: the map others route with
    (stream-bench's generator) and its warm key cache stay; a split replaces it."""
    fake = FakeKinesis(shards=1)
    async with KinesisProducer("s", client=fake, linger=60, rate_limit_percent=None) as producer:
        await producer.send(b"x", partition_key="k0")
        in_use = producer.shard_map
        assert not await producer.refresh_shard_map()
        assert producer.shard_map is in_use
        fake.split_the_only_shard()
        assert await producer.refresh_shard_map()
        assert producer.shard_map is not in_use
        assert {s.shard_id for s in producer.shard_map.open_shards} == {"left", "right"}
        await producer.flush()


async def test_send_without_aggregation_starts_a_new_batch_at_the_entry_cap() -> None:
    """One shard, plain records, two entries a request: every record is sent once, in order."""
    fake = FakeKinesis(shards=1)
    async with KinesisProducer(
        "s", client=fake, aggregate=False, max_batch_entries=2, linger=60, rate_limit_percent=None
    ) as producer:
        futures = [await producer.send(b"%d" % i, partition_key="one-key") for i in range(5)]
        await producer.flush()
        acks = [await future for future in futures]
    assert all(ack.sub_sequence_number is None for ack in acks)
    assert [data for _, _, data in _user_records(fake)] == [b"%d" % i for i in range(5)]
    assert len(fake.written) == 5
