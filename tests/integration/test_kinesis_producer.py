"""Kinesis producer round trips over the wire to kinesis-mock, read back with boto3 + aws-kinesis-agg."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import time
import uuid
from typing import Any

import boto3
import pytest

if any(
    importlib.util.find_spec(m) is None
    for m in ("shardline.errormap", "shardline.retry", "shardline.clients")
):
    pytest.skip(
        "shared shardline modules the producer needs are not in the tree yet", allow_module_level=True
    )

from aiobotocore.session import get_session
from aws_kinesis_agg.deaggregator import deaggregate_records  # type: ignore[import-untyped]

from producers import KinesisProducer
from shardline.records import Record
from shardline.shardmath import ShardMap, list_shards_sync, partition_key_hash

pytestmark = pytest.mark.integration


def create_stream(client: Any, shards: int) -> str:
    name = f"producer-{uuid.uuid4().hex[:12]}"
    client.create_stream(StreamName=name, ShardCount=shards)
    deadline = time.monotonic() + 60
    while (
        client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
        != "ACTIVE"
    ):
        assert time.monotonic() < deadline, "stream never became ACTIVE"
        time.sleep(0.1)  # the emulator gives no signal; bounded poll
    return name


def read_back(client: Any, stream: str) -> list[tuple[str, str, bytes, int]]:
    """(shard id, partition key, data, aggregate index) of every user record in the stream."""
    out: list[tuple[str, str, bytes, int]] = []
    for shard in list_shards_sync(client, stream_name=stream):
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard.shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        entry_index = 0
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=10_000)
            records = response["Records"]
            for record in records:
                event = {
                    "kinesis": {
                        "data": base64.b64encode(record["Data"]).decode(),
                        "partitionKey": record["PartitionKey"],
                        "sequenceNumber": record["SequenceNumber"],
                    }
                }
                for user in deaggregate_records([event]):
                    kinesis = user["kinesis"]
                    data = base64.b64decode(kinesis["data"])
                    out.append((shard.shard_id, kinesis["partitionKey"], data, entry_index))
                entry_index += 1
            iterator = response.get("NextShardIterator")
            if not records and response.get("MillisBehindLatest", 0) == 0:
                break
    return out


def mixed_records(count: int, keys: int) -> list[Record]:
    sizes = (10, 50, 100, 400)
    return [
        Record(f"{i:08d}".encode() + b"x" * sizes[i % 4], partition_key=f"device-{i % keys}")
        for i in range(count)
    ]


@pytest.fixture
def kinesis(kinesis_endpoint: str) -> Any:
    return boto3.client("kinesis", endpoint_url=kinesis_endpoint)


async def produce(endpoint: str, stream: str, records: list[Record], **options: Any) -> None:
    session = get_session()
    async with session.create_client("kinesis", endpoint_url=endpoint) as client:
        async with KinesisProducer(stream, client=client, **options) as producer:
            acks = await (await producer.send_many(records))
    assert acks.ok, [type(e).__name__ for e in list(acks.failed.values())[:3]]


def check_exactly_once_on_the_right_shard(kinesis: Any, stream: str, records: list[Record]) -> None:
    shard_map = ShardMap.from_shards(list_shards_sync(kinesis, stream_name=stream))
    found = read_back(kinesis, stream)
    assert sorted(d for _, _, d, _ in found) == sorted(r.data for r in records)
    for shard_id, key, _, _ in found:
        shard = shard_map.get(shard_id)
        assert shard is not None and shard.contains(partition_key_hash(key))


@pytest.mark.skip(
    reason="unfinished: read-back found no de-aggregated records on kinesis-mock; under investigation"
)
@pytest.mark.timeout(240)
async def test_aggregated_round_trip_of_100k_mixed_records(kinesis: Any, kinesis_endpoint: str) -> None:
    stream = create_stream(kinesis, 4)
    records = mixed_records(100_000, 1000)
    await produce(kinesis_endpoint, stream, records, rate_limit_percent=None, record_ttl=180)
    await asyncio.to_thread(check_exactly_once_on_the_right_shard, kinesis, stream, records)


@pytest.mark.timeout(240)
async def test_plain_round_trip(kinesis: Any, kinesis_endpoint: str) -> None:
    stream = create_stream(kinesis, 2)
    records = mixed_records(5_000, 300)
    await produce(kinesis_endpoint, stream, records, aggregate=False, rate_limit_percent=None)
    await asyncio.to_thread(check_exactly_once_on_the_right_shard, kinesis, stream, records)


@pytest.mark.skip(reason="unfinished: refresh after kinesis-mock SplitShard did not yet see the children")
@pytest.mark.timeout(240)
async def test_split_and_merge_during_a_send_lose_nothing(kinesis: Any, kinesis_endpoint: str) -> None:
    stream = create_stream(kinesis, 2)
    first = mixed_records(3_000, 200)
    second = [Record(b"b" + r.data, partition_key=r.partition_key) for r in first]
    third = [Record(b"c" + r.data, partition_key=r.partition_key) for r in first]
    session = get_session()
    async with session.create_client("kinesis", endpoint_url=kinesis_endpoint) as client:
        async with KinesisProducer(stream, client=client, linger=30, rate_limit_percent=None) as producer:
            batch1 = await producer.send_many(first)  # buffered: linger is long
            shards = ShardMap.from_shards(list_shards_sync(kinesis, stream_name=stream)).open_shards
            middle = (shards[0].starting_hash_key + shards[0].ending_hash_key) // 2
            kinesis.split_shard(
                StreamName=stream, ShardToSplit=shards[0].shard_id, NewStartingHashKey=str(middle)
            )
            await asyncio.to_thread(wait_active, kinesis, stream)
            assert await producer.refresh_shard_map()
            batch2 = await producer.send_many(second)
            await producer.flush()
            opened = ShardMap.from_shards(list_shards_sync(kinesis, stream_name=stream)).open_shards
            kinesis.merge_shards(
                StreamName=stream,
                ShardToMerge=opened[0].shard_id,
                AdjacentShardToMerge=opened[1].shard_id,
            )
            await asyncio.to_thread(wait_active, kinesis, stream)
            batch3 = await producer.send_many(third)  # detected from results or refresh
            await producer.refresh_shard_map()
            await producer.flush()
            for batch in (batch1, batch2, batch3):
                assert (await batch).ok
    found = await asyncio.to_thread(read_back, kinesis, stream)
    all_shards = ShardMap.from_shards(list_shards_sync(kinesis, stream_name=stream))
    datas = [d for _, _, d, _ in found]
    for record in [*first, *second, *third]:
        assert record.data in datas
    for shard_id, key, _, _ in found:
        shard = all_shards.get(shard_id)
        assert shard is not None and shard.contains(partition_key_hash(key))


def wait_active(client: Any, stream: str) -> None:
    deadline = time.monotonic() + 60
    while (
        client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
        != "ACTIVE"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)  # the emulator gives no signal; bounded poll
