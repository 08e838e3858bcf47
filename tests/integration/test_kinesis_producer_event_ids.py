"""Event ids end to end: KinesisProducer -> kinesis-mock -> Shardline's record conversion.

The id travels in the KPL aggregate's per-record ``event_id`` tag (Kinesis entries have no
headers), signed with the deployment's event-id key, so idempotent sinks can key on it; a
consumer without the key keys on positions.  aws-kinesis-agg, which ignores tags, must still
read every record of the same stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import boto3
import pytest
from aiobotocore.session import get_session

from consumers.kinesis import records_from_api
from producers import KinesisProducer
from shardline.aggregation import DeaggregationPolicy
from shardline.eventid import EventIdKey
from shardline.records import ConsumedRecord, Record
from tests.integration.kinesis_producer_readback import assert_each_once_on_its_shard, create_stream
from tests.kinesis_sync import list_shards_sync

pytestmark = pytest.mark.integration

KEY = EventIdKey("an-event-id-key-for-the-integration-test")


@pytest.fixture
def kinesis(kinesis_endpoint: str) -> Any:
    return boto3.client("kinesis", endpoint_url=kinesis_endpoint)


@pytest.fixture
async def aio_kinesis(kinesis_endpoint: str) -> AsyncIterator[Any]:
    async with get_session().create_client("kinesis", endpoint_url=kinesis_endpoint) as client:
        yield client


def consume(client: Any, stream: str, policy: DeaggregationPolicy | None = None) -> list[ConsumedRecord]:
    """Every record of the stream through the consumer's own GetRecords -> ConsumedRecord step."""
    out: list[ConsumedRecord] = []
    for shard in list_shards_sync(client, stream_name=stream):
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard.shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=10_000)
            out.extend(
                records_from_api(
                    response["Records"], stream=stream, shard_id=shard.shard_id, shard=shard, policy=policy
                )
            )
            iterator = response.get("NextShardIterator")
            if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
                break
    return out


def workload(tag: str, count: int) -> list[Record]:
    """Unique payloads over 20 keys; two thirds carry an event id, the rest none."""
    return [
        Record(
            f"{tag}-{i:06d}".encode() + b"x" * (i % 200),
            partition_key=f"device-{i % 20}",
            event_id=f"evt-{tag}-{i}" if i % 3 else None,
        )
        for i in range(count)
    ]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("aggregate", [True, False], ids=["aggregated", "not-aggregated"])
async def test_event_ids_arrive_as_consumed_record_event_ids(
    kinesis: Any, aio_kinesis: Any, aggregate: bool
) -> None:
    stream = await asyncio.to_thread(create_stream, kinesis, 2, "event-ids")
    batch = workload("b", 1_500)
    singles = workload("s", 150)
    async with KinesisProducer(
        stream, client=aio_kinesis, aggregate=aggregate, rate_limit_percent=None, event_id_key=KEY
    ) as producer:
        acks = await (await producer.send_many(batch))
        futures = []
        for i, record in enumerate(singles):
            if i % 2:  # the keyword form, for plain bytes
                futures.append(
                    await producer.send(
                        record.data, partition_key=record.partition_key, event_id=record.event_id
                    )
                )
            else:
                futures.append(await producer.send(record))
        await producer.flush()
        single_acks = [await future for future in futures]
    assert acks.ok and len(single_acks) == len(singles)
    sent = {record.data: record.event_id for record in [*batch, *singles]}

    consumed = await asyncio.to_thread(consume, kinesis, stream, DeaggregationPolicy(event_id_key=KEY))
    got = {record.data: record.event_id for record in consumed}
    assert len(consumed) == len(sent)  # exactly once each
    assert got == sent
    for item in consumed:  # what idempotent sinks key on: the signed id
        assert item.identity == (item.event_id or item.position.identity)
        assert item.event_id_verified == (item.event_id is not None)
    # a consumer without the key reads the ids but keys on positions
    for item in await asyncio.to_thread(consume, kinesis, stream):
        assert item.identity == item.position.identity
    # A peer de-aggregator that ignores tags still finds every record, on its shard.
    await asyncio.to_thread(assert_each_once_on_its_shard, kinesis, stream, [*batch, *singles])
