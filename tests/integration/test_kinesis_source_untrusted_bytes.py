"""KinesisSource over kinesis-mock with device bytes that look like KPL aggregates.

A device that can put one record can make it look like an aggregate: the default policy
expands it within bounds (positions as identity), a refused one arrives whole as a
``RefusedRecord``, and ``deaggregate=False`` keeps every record exactly as it was put.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.kinesis import KinesisSource, ReaderConfig
from shardline._kpl_pb import AggregatedRecord
from shardline.aggregation import MAGIC, AggregateBuilder, DeaggregationPolicy
from shardline.records import ConsumedRecord, RefusedRecord
from tests.integration.test_kinesis_readers import async_client, create_stream, put, sync_client

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def crafted_aggregate() -> bytes:
    builder = AggregateBuilder()
    builder.try_add("device-7", b'{"t": 1}', None, "victim-1")
    builder.try_add("device-7", b'{"t": 2}')
    return builder.encode()


def amplifier() -> bytes:
    message = AggregatedRecord()
    message.partition_key_table.append("k" * 300)
    for _ in range(50):
        message.records.add(partition_key_index=0, data=b"")
    body = message.SerializeToString()
    return MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()


async def consume(
    endpoint: str, stream: str, policy: DeaggregationPolicy, count: int
) -> list[ConsumedRecord]:
    config = ReaderConfig(idle_backoff_initial=0.05, idle_backoff_max=0.2, deaggregation=policy)
    records: list[ConsumedRecord] = []
    async with async_client(endpoint) as client:
        source = KinesisSource(stream, store=MemoryCheckpointStore(), owner="w", client=client, config=config)

        async def read() -> None:
            async for batch in source.batches():
                records.extend(batch.records)
                if len(records) >= count:
                    return

        try:
            await asyncio.wait_for(read(), 60)
        finally:
            await source.close()
    return records


async def test_device_bytes_expanded_within_bounds_or_kept_whole(kinesis_endpoint: str) -> None:
    client = sync_client(kinesis_endpoint)
    stream = create_stream(client, 1)
    put(client, stream, [("device-7", crafted_aggregate()), ("device-8", amplifier())])

    expanded = await consume(kinesis_endpoint, stream, DeaggregationPolicy(), 3)
    assert [r.data for r in expanded[:2]] == [b'{"t": 1}', b'{"t": 2}']
    assert expanded[0].event_id == "victim-1" and expanded[0].identity.endswith("/0")  # position
    assert isinstance(expanded[2], RefusedRecord) and expanded[2].data == amplifier()

    whole = await consume(kinesis_endpoint, stream, DeaggregationPolicy(deaggregate=False), 2)
    assert [r.data for r in whole] == [crafted_aggregate(), amplifier()]
    assert all(type(r) is ConsumedRecord and r.event_id is None for r in whole)
