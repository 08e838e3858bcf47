"""KinesisSource building its own client (as `shardline consume` does): arrival times in UTC."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.kinesis import KinesisSource, ReaderConfig
from tests.integration.test_kinesis_readers import create_stream, put, sync_client

pytestmark = pytest.mark.integration


async def test_arrival_times_are_utc_instants(kinesis_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = sync_client(kinesis_endpoint)
    stream = create_stream(client, 1)
    before = datetime.now(UTC) - timedelta(minutes=5)
    put(client, stream, [(f"k{index}", b"v%d" % index) for index in range(3)])
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", kinesis_endpoint)
    source = KinesisSource(
        stream, store=MemoryCheckpointStore(), owner="worker-1", config=ReaderConfig(idle_backoff_max=0.2)
    )
    records = []
    async with source, asyncio.timeout(60):
        async for batch in source.batches():
            records.extend(batch.records)
            if len(records) >= 3:
                break
    assert [record.data for record in records] == [b"v0", b"v1", b"v2"]
    for record in records:
        assert record.arrival_time is not None and record.arrival_time.tzinfo is UTC
        assert before <= record.arrival_time <= datetime.now(UTC) + timedelta(minutes=5)
