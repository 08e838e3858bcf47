"""KPL aggregates over the real wire (kinesis-mock): ours and aws-kinesis-agg's, routed by the
shard map, read back with GetRecords and de-aggregated; plus ListShards paging and error mapping."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from typing import Any

import aws_kinesis_agg.aggregator as peer_aggregator
import pytest
from botocore.exceptions import ClientError

from shardline.aggregation import MAGIC, AggregateBuilder, deaggregate_consumed
from shardline.clients import aiobotocore_client, boto3_client
from shardline.errormap import from_botocore
from shardline.errors import ResourceNotFoundError
from shardline.records import ConsumedRecord, KinesisPosition
from shardline.shardmath import ShardMap, list_shards
from tests.kinesis_sync import list_shards_sync

pytestmark = pytest.mark.integration


def create_stream(client: Any, shards: int) -> str:
    name = f"agg-{uuid.uuid4().hex[:12]}"
    client.create_stream(StreamName=name, ShardCount=shards)
    deadline = time.monotonic() + 60
    while (
        client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
        != "ACTIVE"
    ):
        assert time.monotonic() < deadline, "stream never became ACTIVE"
        time.sleep(0.1)  # the emulator gives no signal; bounded poll
    return name


def read_shard(client: Any, stream: str, shard_id: str) -> list[ConsumedRecord]:
    iterator = client.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    out: list[ConsumedRecord] = []
    while iterator:
        response = client.get_records(ShardIterator=iterator, Limit=1000)
        for record in response["Records"]:
            position = KinesisPosition(stream, shard_id, record["SequenceNumber"])
            out.append(ConsumedRecord(record["Data"], record["PartitionKey"], position))
        if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
            break
        iterator = response.get("NextShardIterator")
    return out


@pytest.fixture
def kinesis(kinesis_endpoint: str) -> Any:
    return boto3_client("kinesis", endpoint_url=kinesis_endpoint)


async def test_list_shards_pages_over_the_wire(kinesis: Any, kinesis_endpoint: str) -> None:
    stream = create_stream(kinesis, 5)
    async with aiobotocore_client("kinesis", endpoint_url=kinesis_endpoint) as client:
        paged = await list_shards(client, stream_name=stream, page_size=2)
    assert len(paged) == 5 and len({s.shard_id for s in paged}) == 5
    assert paged == list_shards_sync(kinesis, stream_name=stream)
    shard_map = ShardMap.from_shards(paged)
    assert len(shard_map.open_shards) == 5
    assert shard_map.shard_for_hash(0).starting_hash_key == 0


def test_aggregates_route_to_their_shard_and_deaggregate(kinesis: Any) -> None:
    stream = create_stream(kinesis, 4)
    shard_map = ShardMap.from_shards(list_shards_sync(kinesis, stream_name=stream))
    sent: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    for i in range(400):
        key = f"device-{i % 37}-ü"
        sent[shard_map.shard_for_key(key).shard_id].append((key, f"reading {i}".encode() * (i % 5)))

    entries: list[dict[str, Any]] = []
    for records in sent.values():
        builder = AggregateBuilder()
        for key, data in records:
            assert builder.try_add(key, data)
        assert builder.entry_explicit_hash_key is None  # routed by its partition key's MD5
        entries.append({"Data": builder.encode(), "PartitionKey": builder.entry_partition_key})
    # one aggregate made by the peer library, and one record that only looks like an aggregate
    peer = peer_aggregator.AggRecord()
    for n in range(3):
        assert peer.add_user_record("peer-key", f"peer {n}".encode())
    peer_key, _, peer_blob = peer.get_contents()
    entries.append({"Data": peer_blob, "PartitionKey": peer_key})
    lookalike = MAGIC + b"\x00" * 40
    entries.append({"Data": lookalike, "PartitionKey": "lookalike"})

    response = kinesis.put_records(StreamName=stream, Records=entries)
    assert response.get("FailedRecordCount", 0) == 0

    received: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    sub_sequences: dict[str, list[int]] = defaultdict(list)
    plain: list[ConsumedRecord] = []
    for shard in shard_map.open_shards:
        for record in read_shard(kinesis, stream, shard.shard_id):
            users = deaggregate_consumed(record)
            if users == [record]:
                plain.append(record)
                continue
            for user in users:
                received[shard.shard_id].append((user.partition_key, user.data))
                assert isinstance(user.position, KinesisPosition)
                sub_sequences[user.position.sequence_number].append(user.position.sub_sequence_number)

    peer_shard = shard_map.shard_for_key("peer-key").shard_id
    expected = {shard_id: list(records) for shard_id, records in sent.items()}
    expected.setdefault(peer_shard, []).extend(("peer-key", f"peer {n}".encode()) for n in range(3))
    assert {k: sorted(v) for k, v in received.items()} == {k: sorted(v) for k, v in expected.items()}
    assert all(subs == list(range(len(subs))) for subs in sub_sequences.values())
    assert [(r.partition_key, r.data) for r in plain] == [("lookalike", lookalike)]


def test_service_errors_map_to_the_error_tree(kinesis: Any) -> None:
    with pytest.raises(ClientError) as info:
        kinesis.describe_stream_summary(StreamName=f"missing-{uuid.uuid4().hex[:8]}")
    mapped = from_botocore(info.value, service="kinesis")
    assert isinstance(mapped, ResourceNotFoundError) and not mapped.retriable
