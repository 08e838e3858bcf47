"""Ctrl-C during ``stream-bench hotshards``: the scan ends early (not after its 600 s) and the
analysis of what was read comes back."""

from __future__ import annotations

import asyncio
import uuid

import boto3
import pytest
from aiobotocore.session import get_session

from benchmarks.hotshards import scan_hot_shards

pytestmark = pytest.mark.integration


async def test_a_stop_ends_the_scan_with_what_was_read(moto_endpoint: str) -> None:
    stream = f"hotstop-{uuid.uuid4().hex[:10]}"
    kinesis = boto3.client("kinesis", endpoint_url=moto_endpoint)
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    kinesis.put_records(StreamName=stream, Records=[{"Data": b"x" * 50, "PartitionKey": "dev-1"}] * 100)
    stop = asyncio.Event()
    async with get_session().create_client("kinesis", endpoint_url=moto_endpoint) as client:
        scan = asyncio.create_task(scan_hot_shards(client, stream, 600, from_trim_horizon=True, stop=stop))
        await asyncio.sleep(0)  # let the scan start its shard readers
        stop.set()  # what the first Ctrl-C does
        analysis = await asyncio.wait_for(scan, timeout=30)  # far less than the 600 s duration
    assert analysis["stream"] == stream
    assert set(analysis["shards"]) == {"shardId-000000000000", "shardId-000000000001"}
