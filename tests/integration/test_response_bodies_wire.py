"""GetRecords and PutRecords bodies and SubscribeToShard events parsed by Shardline's own
parsers, over the wire.

kinesis-mock's responses must take the fast path (a spy after the parser sees the body emptied)
and give what botocore's own parse gives for the same call.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from botocore.config import Config

from consumers.kinesis import TRIM_HORIZON, FanOutShardReader, ensure_consumer, stream_arn
from consumers.kinesis.reader_bodies import parse_subscribe_event
from consumers.kinesis.session import reader_session
from producers import put_records_body
from shardline.clients import aiobotocore_client
from tests.integration.efo_compat import tolerate_missing_initial_response
from tests.integration.test_kinesis_readers import async_client, create_stream, put, read_until, sync_client
from tests.kinesis_sync import list_shards_sync

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _body_spy(client: Any, operation: str) -> list[bytes]:
    """The bodies botocore's parser is left with, seen by a handler after Shardline's."""
    seen: list[bytes] = []

    def spy(response_dict: dict[str, Any], **_: Any) -> None:
        seen.append(response_dict["body"])

    client.meta.events.register(f"before-parse.kinesis.{operation}", spy, unique_id=f"test-spy-{operation}")
    return seen


async def _read_shard(client: Any, stream: str, shard_id: str) -> dict[str, Any]:
    iterator = (
        await client.get_shard_iterator(StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")
    )["ShardIterator"]
    response: dict[str, Any] = await client.get_records(ShardIterator=iterator, Limit=10_000)
    return response


async def test_get_records_bodies_parse_as_botocore_parses_them(kinesis_endpoint: str) -> None:
    boto = sync_client(kinesis_endpoint)
    stream = await asyncio.to_thread(create_stream, boto, 1)
    entries = [(f"key-{index}", os.urandom(index % 300)) for index in range(200)]
    await asyncio.to_thread(put, boto, stream, entries)
    shard_id = boto.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    async with (
        reader_session().create_client(
            "kinesis", endpoint_url=kinesis_endpoint, region_name="us-east-1"
        ) as ours,
        async_client(kinesis_endpoint) as botocores,
    ):
        seen = _body_spy(ours, "GetRecords")
        fast = await _read_shard(ours, stream, shard_id)
        plain = await _read_shard(botocores, stream, shard_id)
    assert seen == [b""]  # the parser took the body: botocore walked nothing
    assert [(r["PartitionKey"], r["Data"]) for r in fast["Records"]] == entries
    assert fast.keys() == plain.keys()
    assert fast["MillisBehindLatest"] == plain["MillisBehindLatest"]
    for mine, theirs in zip(fast["Records"], plain["Records"], strict=True):
        assert mine.keys() == theirs.keys()
        for member in mine.keys() - {"ApproximateArrivalTimestamp"}:
            assert mine[member] == theirs[member]
        # the same instant; botocore's default gives it in the local time zone
        assert mine["ApproximateArrivalTimestamp"] == theirs["ApproximateArrivalTimestamp"]


async def test_put_records_bodies_parse_as_botocore_parses_them(kinesis_endpoint: str) -> None:
    boto = sync_client(kinesis_endpoint)
    stream = await asyncio.to_thread(create_stream, boto, 2)
    records = [{"Data": os.urandom(50), "PartitionKey": f"key-{index}"} for index in range(100)]
    async with aiobotocore_client(
        "kinesis", endpoint_url=kinesis_endpoint, config=Config(parameter_validation=False)
    ) as client:
        put_records_body.install(client)
        seen = _body_spy(client, "PutRecords")
        fast = await client.put_records(StreamName=stream, Records=records)
    plain = boto.put_records(StreamName=stream, Records=records)
    assert seen == [b""]
    assert fast.keys() == plain.keys()
    assert fast["FailedRecordCount"] == plain["FailedRecordCount"] == 0
    assert [sorted(r) for r in fast["Records"]] == [sorted(r) for r in plain["Records"]]
    assert [r["ShardId"] for r in fast["Records"]] == [r["ShardId"] for r in plain["Records"]]


async def test_subscribe_to_shard_events_parse_with_the_reader_s_event_parser(
    kinesis_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed_events: list[bool] = []

    def spy(body: bytes) -> dict[str, Any] | None:
        event = parse_subscribe_event(body)
        parsed_events.append(event is not None)
        return event

    monkeypatch.setattr("consumers.kinesis.session.parse_subscribe_event", spy)
    boto = sync_client(kinesis_endpoint)
    stream = await asyncio.to_thread(create_stream, boto, 1)
    entries = [(f"key-{index}", os.urandom(index % 300)) for index in range(120)]
    await asyncio.to_thread(put, boto, stream, entries)
    (shard,) = await asyncio.to_thread(list_shards_sync, boto, stream_name=stream)
    with tolerate_missing_initial_response():
        async with reader_session().create_client(
            "kinesis", endpoint_url=kinesis_endpoint, region_name="us-east-1"
        ) as client:
            consumer_arn = await ensure_consumer(client, await stream_arn(client, stream), "wire-parse")
            reader = FanOutShardReader(
                client, consumer_arn, stream, shard.shard_id, TRIM_HORIZON, shard=shard
            )
            records, _ = await read_until(aiter(reader), len(entries), timeout=60)
    assert [(r.partition_key, r.data) for r in records] == entries
    assert parsed_events and all(parsed_events)  # every event took the fast path
