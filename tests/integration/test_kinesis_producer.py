"""Kinesis producer round trips over the wire to kinesis-mock, read back with boto3 + aws-kinesis-agg."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import boto3
import pytest
from aiobotocore.session import get_session

from producers import KinesisProducer
from shardline.limits import HASH_KEY_MAX
from shardline.records import Record
from shardline.shardmath import ShardMap
from tests.integration.kinesis_producer_readback import (
    StoredRecord,
    assert_each_once_on_its_shard,
    create_stream,
    read_back,
    wait_closed,
)
from tests.kinesis_sync import list_shards_sync

pytestmark = pytest.mark.integration


def mixed_records(count: int, keys: int, *, tag: bytes = b"", seed: int = 7) -> list[Record]:
    """Unique payloads of 10 B .. 60 KiB (the largest travel unaggregated), 1% with explicit hash keys."""
    rng = random.Random(seed)
    sizes = (10, 40, 100, 300)
    records = []
    for i in range(count):
        if i % 10_000 == 9_999:
            size = 60 * 1024  # over the 50 KiB aggregate cap: sent as a plain entry
        elif i % 50 == 49:
            size = 2_000
        else:
            size = sizes[i % len(sizes)]
        ehk = rng.randrange(HASH_KEY_MAX + 1) if i % 97 == 0 else None
        body = tag + f"{i:08d}".encode()
        records.append(
            Record(body + b"x" * size, partition_key=f"device-{rng.randrange(keys)}", explicit_hash_key=ehk)
        )
    return records


async def deliver_and_find(
    kinesis: Any, stream: str, records: list[Record], **options: Any
) -> list[StoredRecord]:
    """One send_many() of ``records`` (pacing off), every ack ok, each record read back once on its shard."""
    async with KinesisProducer(stream, rate_limit_percent=None, **options) as producer:
        acks = await (await producer.send_many(records))
    assert acks.ok
    return await asyncio.to_thread(assert_each_once_on_its_shard, kinesis, stream, records)


@pytest.fixture
def kinesis(kinesis_endpoint: str) -> Any:
    return boto3.client("kinesis", endpoint_url=kinesis_endpoint)


@pytest.fixture
async def aio_kinesis(kinesis_endpoint: str) -> AsyncIterator[Any]:
    async with get_session().create_client("kinesis", endpoint_url=kinesis_endpoint) as client:
        yield client


@pytest.mark.timeout(180)
async def test_aggregated_round_trip_of_100k_mixed_records(kinesis: Any, aio_kinesis: Any) -> None:
    stream = await asyncio.to_thread(create_stream, kinesis, 4)
    records = mixed_records(100_000, 1000)
    one_by_one, batched = records[:5_000], records[5_000:]
    async with KinesisProducer(
        stream, client=aio_kinesis, rate_limit_percent=None, record_ttl=150
    ) as producer:
        futures = [await producer.send(record) for record in one_by_one]
        batch = await producer.send_many(batched)
        acks = await batch
        singles = await asyncio.gather(*futures)
    assert acks.ok, [type(e).__name__ for e in list(acks.failed.values())[:3]]
    found = await asyncio.to_thread(assert_each_once_on_its_shard, kinesis, stream, records)
    # The acks name where each record is: its shard, aggregate and position inside it.
    where = {(r.shard_id, r.sequence_number, r.sub_sequence_number): r.data for r in found}
    for record, ack in [*zip(one_by_one, singles, strict=True), *zip(batched, acks, strict=True)]:
        assert where[(ack.shard_id, ack.sequence_number, ack.sub_sequence_number)] == record.data
    entries = {(r.shard_id, r.sequence_number) for r in found}
    assert len(entries) < len(records) / 50  # aggregated: a few hundred entries for 100k records


@pytest.mark.timeout(120)
async def test_plain_round_trip(kinesis: Any, aio_kinesis: Any) -> None:
    stream = await asyncio.to_thread(create_stream, kinesis, 2)
    records = mixed_records(5_000, 300, seed=11)
    found = await deliver_and_find(kinesis, stream, records, client=aio_kinesis, aggregate=False)
    assert all(r.sub_sequence_number is None for r in found)  # nothing was aggregated
    assert len({(r.shard_id, r.sequence_number) for r in found}) == len(records)


@pytest.mark.timeout(120)
async def test_own_client_round_trip_without_botocore_parameter_validation(
    kinesis: Any, kinesis_endpoint: str
) -> None:
    """The client the producer builds skips botocore's per-entry validation (the producer has
    validated every record already); plain entries, explicit hash keys and 60 KiB records
    still arrive."""
    stream = await asyncio.to_thread(create_stream, kinesis, 2)
    records = mixed_records(2_000, 100, seed=13)
    async with KinesisProducer(
        stream, endpoint_url=kinesis_endpoint, aggregate=False, rate_limit_percent=None
    ) as producer:
        # botocore wraps its serializer in a ParamValidationDecorator when it validates
        assert type(producer._client._serializer).__name__ != "ParamValidationDecorator"
        acks = await (await producer.send_many(records))
    assert acks.ok
    found = await asyncio.to_thread(assert_each_once_on_its_shard, kinesis, stream, records)
    assert len(found) == len(records)


# Keys whose JSON needs escaping: quotes, backslashes, control characters, non-ASCII and a
# character outside the BMP (a surrogate pair in JSON).
AWKWARD_KEYS = ['q"uote', "back\\slash", "tab\tand\nnewline", "ctl\x01", "ü-ñ-€", "snow ☃", "clef 𝄞", "/"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("aggregate", [False, True], ids=["plain", "aggregated"])
async def test_own_client_request_bodies_carry_any_key(
    kinesis: Any, kinesis_endpoint: str, aggregate: bool
) -> None:
    """The producer's own client encodes PutRecords bodies itself (producers.put_records_body):
    every key and every byte arrives as sent, explicit hash keys included."""
    stream = await asyncio.to_thread(create_stream, kinesis, 2)
    records = [
        Record(
            f"{i:05d}".encode() + bytes(range(256)),
            partition_key=AWKWARD_KEYS[i % len(AWKWARD_KEYS)],
            explicit_hash_key=(i * 7919) % (HASH_KEY_MAX + 1) if i % 5 == 0 else None,
        )
        for i in range(400)
    ]
    found = await deliver_and_find(
        kinesis, stream, records, endpoint_url=kinesis_endpoint, aggregate=aggregate
    )
    assert sorted((r.data, r.partition_key) for r in found) == sorted(
        (r.data, r.partition_key) for r in records
    )


@pytest.mark.timeout(120)
async def test_columns_round_trip(kinesis: Any, aio_kinesis: Any) -> None:
    """send_many(values, keys): bytes and keys as two lists, no Record built by the caller."""
    stream = await asyncio.to_thread(create_stream, kinesis, 2)
    values = [b"%06d" % i + random.Random(i).randbytes(60) for i in range(3_000)]
    partition_keys = [f"device-{i % 97}" for i in range(3_000)]
    async with KinesisProducer(stream, client=aio_kinesis, rate_limit_percent=None) as producer:
        acks = await (await producer.send_many(values, partition_keys))
    assert acks.ok
    records = [Record(v, k) for v, k in zip(values, partition_keys, strict=True)]
    found = await asyncio.to_thread(assert_each_once_on_its_shard, kinesis, stream, records)
    where = {(r.shard_id, r.sequence_number, r.sub_sequence_number): r.data for r in found}
    for value, ack in zip(values, acks, strict=True):
        assert where[(ack.shard_id, ack.sequence_number, ack.sub_sequence_number)] == value


def split_first_shard(kinesis: Any, stream: str) -> str:
    """Split the lowest shard in two; returns the (now closed) parent's id."""
    shards = ShardMap.from_shards(list_shards_sync(kinesis, stream_name=stream)).open_shards
    parent = min(shards, key=lambda s: s.starting_hash_key)
    middle = (parent.starting_hash_key + parent.ending_hash_key) // 2
    kinesis.split_shard(StreamName=stream, ShardToSplit=parent.shard_id, NewStartingHashKey=str(middle))
    wait_closed(kinesis, stream, {parent.shard_id})
    return parent.shard_id


def merge_first_two_shards(kinesis: Any, stream: str) -> set[str]:
    """Merge the two lowest open shards; returns their (now closed) ids."""
    opened = sorted(
        ShardMap.from_shards(list_shards_sync(kinesis, stream_name=stream)).open_shards,
        key=lambda s: s.starting_hash_key,
    )
    kinesis.merge_shards(
        StreamName=stream, ShardToMerge=opened[0].shard_id, AdjacentShardToMerge=opened[1].shard_id
    )
    merged = {opened[0].shard_id, opened[1].shard_id}
    wait_closed(kinesis, stream, merged)
    return merged


@pytest.mark.timeout(150)
async def test_split_and_merge_during_a_send_lose_nothing(kinesis: Any, aio_kinesis: Any) -> None:
    stream = await asyncio.to_thread(create_stream, kinesis, 2)
    tag = uuid.uuid4().hex[:4].encode()
    first = mixed_records(2_000, 200, tag=tag + b"a")
    second = mixed_records(2_000, 200, tag=tag + b"b")
    third = mixed_records(2_000, 200, tag=tag + b"c")
    # Aggregates of up to 1 MiB and a long linger: the first batch stays buffered (open
    # aggregates) until the split is over, so the re-plan, not luck, decides where it goes.
    async with KinesisProducer(
        stream, client=aio_kinesis, linger=30, aggregate_max_bytes=1_000_000, rate_limit_percent=None
    ) as producer:
        batch1 = await producer.send_many(first)  # still buffered: the linger is long
        split_parent = await asyncio.to_thread(split_first_shard, kinesis, stream)
        assert producer.buffered[0] == len(first)  # nothing was sent before the split
        assert await producer.refresh_shard_map()  # the buffered aggregates are re-planned
        assert len(producer.shard_map.open_shards) == 3
        batch2 = await producer.send_many(second)
        await producer.flush()
        merged = await asyncio.to_thread(merge_first_two_shards, kinesis, stream)
        # Not refreshed on purpose: Kinesis routes these to the merged shard, and the
        # producer learns the change from the PutRecords results.
        batch3 = await producer.send_many(third)
        await producer.flush()
        after = {s.shard_id for s in producer.shard_map.open_shards}
        for batch in (batch1, batch2, batch3):
            assert (await batch).ok
    assert len(after) == 2 and not after & (merged | {split_parent})  # the producer saw both changes
    found = await asyncio.to_thread(assert_each_once_on_its_shard, kinesis, stream, [*first, *second, *third])
    # Everything was still buffered when the shard split: nothing may reach the closed parent.
    assert not any(r.shard_id == split_parent for r in found)


@pytest.mark.timeout(60)
async def test_read_back_sees_records_of_a_plain_put(kinesis: Any) -> None:
    """The read-back helper itself: a plain put_record is found (no aggregation involved)."""
    stream = await asyncio.to_thread(create_stream, kinesis, 1)
    await asyncio.to_thread(kinesis.put_record, StreamName=stream, Data=b"plain", PartitionKey="k")
    found = await asyncio.to_thread(read_back, kinesis, stream)
    assert [(r.partition_key, r.data, r.sub_sequence_number) for r in found] == [("k", b"plain", None)]
