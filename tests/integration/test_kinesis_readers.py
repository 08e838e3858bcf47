"""The shard readers over the real wire (kinesis-mock): polling, KPL de-aggregation, fan-out."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import boto3
import pytest
from aiobotocore.session import get_session
from aws_kinesis_agg.aggregator import RecordAggregator

from consumers.kinesis import (
    TRIM_HORIZON,
    FanOutShardReader,
    PollingShardReader,
    ReaderConfig,
    ensure_consumer,
    stream_arn,
)
from shardline.records import ConsumedRecord, KinesisPosition
from tests.integration.efo_compat import tolerate_missing_initial_response
from tests.kinesis_sync import list_shards_sync

pytestmark = pytest.mark.integration

FAST = ReaderConfig(idle_backoff_initial=0.05, idle_backoff_max=0.2)


def sync_client(endpoint: str) -> Any:
    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1")


@asynccontextmanager
async def async_client(endpoint: str) -> AsyncIterator[Any]:
    async with get_session().create_client("kinesis", endpoint_url=endpoint, region_name="us-east-1") as c:
        yield c


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll an external server with a bounded deadline (it gives no signal of its own)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.1)


def create_stream(client: Any, shards: int) -> str:
    name = f"readers-{uuid.uuid4().hex[:12]}"
    client.create_stream(StreamName=name, ShardCount=shards)
    wait_until(
        lambda: (
            client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
            == "ACTIVE"
        )
    )
    return name


def put(client: Any, stream: str, entries: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """PutRecords in chunks, retrying failed entries; returns each entry's result in order."""
    results: list[dict[str, Any]] = [{} for _ in entries]
    pending = list(range(len(entries)))
    while pending:
        chunk, pending = pending[:500], pending[500:]
        response = client.put_records(
            StreamName=stream,
            Records=[{"PartitionKey": entries[i][0], "Data": entries[i][1]} for i in chunk],
        )
        for index, result in zip(chunk, response["Records"], strict=True):
            if "SequenceNumber" in result:
                results[index] = result
            else:
                pending.append(index)
    return results


async def read_until(
    reader: AsyncIterator[Any], count: int, timeout: float = 120.0
) -> tuple[list[ConsumedRecord], list[Any]]:
    records: list[ConsumedRecord] = []
    batches: list[Any] = []

    async def collect() -> None:
        async for batch in reader:
            batches.append(batch)
            records.extend(batch.records)
            if len(records) >= count or batch.end_of_shard:
                return

    await asyncio.wait_for(collect(), timeout)
    return records, batches


async def test_polling_round_trip_across_four_shards(kinesis_endpoint: str) -> None:
    client = sync_client(kinesis_endpoint)
    stream = create_stream(client, 4)
    entries = [(f"device-{i % 97}", f"rec-{i}".encode()) for i in range(2000)]
    results = put(client, stream, entries)
    expected = {
        (r["ShardId"], r["SequenceNumber"]): data for r, (_, data) in zip(results, entries, strict=True)
    }
    shards = list_shards_sync(client, stream_name=stream)
    assert len(shards) == 4
    got: dict[tuple[str, str], bytes] = {}
    async with async_client(kinesis_endpoint) as aclient:
        for shard in shards:
            want = sum(1 for key in expected if key[0] == shard.shard_id)
            reader = PollingShardReader(
                aclient, stream, shard.shard_id, TRIM_HORIZON, shard=shard, config=FAST, stop_at_tip=True
            )
            records, _ = await read_until(aiter(reader), want)
            assert len(records) == want
            for record in records:
                position = record.position
                assert isinstance(position, KinesisPosition)
                assert position.shard_id == shard.shard_id and position.stream == stream
                assert position.sub_sequence_number == 0
                assert record.arrival_time is not None
                key = (position.shard_id, position.sequence_number)
                assert key not in got
                got[key] = record.data
            sequence = [int(r.position.sequence_number) for r in records]  # type: ignore[union-attr]
            assert sequence == sorted(sequence)
    assert got == expected


async def test_kpl_aggregates_are_deaggregated_with_sub_sequence_numbers(kinesis_endpoint: str) -> None:
    client = sync_client(kinesis_endpoint)
    stream = create_stream(client, 1)
    aggregator = RecordAggregator()
    sent: list[tuple[str, bytes]] = []
    aggregates: list[tuple[str, bytes]] = []
    for i in range(120):
        key, data = f"k{i % 7}", f"user-{i}".encode()
        sent.append((key, data))
        full = aggregator.add_user_record(key, data)
        if full is not None:
            pk, _ehk, blob = full.get_contents()
            aggregates.append((pk, blob))
        if len(aggregator.current_record.agg_record.records) >= 40:  # force several aggregates
            pk, _ehk, blob = aggregator.clear_and_get().get_contents()
            aggregates.append((pk, blob))
    if aggregator.get_num_user_records():
        pk, _ehk, blob = aggregator.clear_and_get().get_contents()
        aggregates.append((pk, blob))
    assert len(aggregates) == 3
    put(client, stream, aggregates)
    (shard,) = list_shards_sync(client, stream_name=stream)
    async with async_client(kinesis_endpoint) as aclient:
        reader = PollingShardReader(aclient, stream, shard.shard_id, shard=shard, config=FAST)
        records, _ = await read_until(aiter(reader), len(sent))
    assert [(r.partition_key, r.data) for r in records] == sent
    positions = [r.position for r in records]
    assert all(isinstance(p, KinesisPosition) for p in positions)
    by_aggregate: dict[str, list[int]] = {}
    for p in positions:
        assert isinstance(p, KinesisPosition)
        by_aggregate.setdefault(p.sequence_number, []).append(p.sub_sequence_number)
    assert [len(v) for v in by_aggregate.values()] == [40, 40, 40]
    assert all(v == list(range(40)) for v in by_aggregate.values())


async def test_resume_inside_an_aggregate_skips_processed_sub_records(kinesis_endpoint: str) -> None:
    from consumers.kinesis import AT_SEQUENCE_NUMBER

    client = sync_client(kinesis_endpoint)
    stream = create_stream(client, 1)
    aggregator = RecordAggregator()
    for i in range(10):
        aggregator.add_user_record("k", f"u{i}".encode())
    pk, _ehk, blob = aggregator.clear_and_get().get_contents()
    (result,) = put(client, stream, [(pk, blob), ("plain", b"after")])[:1]
    (shard,) = list_shards_sync(client, stream_name=stream)
    start = AT_SEQUENCE_NUMBER(result["SequenceNumber"], skip_through_sub_sequence=6)
    async with async_client(kinesis_endpoint) as aclient:
        reader = PollingShardReader(aclient, stream, shard.shard_id, start, shard=shard, config=FAST)
        records, _ = await read_until(aiter(reader), 4)
    assert [r.data for r in records] == [b"u7", b"u8", b"u9", b"after"]


async def test_split_parent_ends_with_child_shards_and_children_hold_the_rest(kinesis_endpoint: str) -> None:
    client = sync_client(kinesis_endpoint)
    stream = create_stream(client, 1)
    put(client, stream, [(f"k{i}", f"before-{i}".encode()) for i in range(50)])
    (parent,) = list_shards_sync(client, stream_name=stream)
    client.split_shard(StreamName=stream, ShardToSplit=parent.shard_id, NewStartingHashKey=str(2**127))
    wait_until(
        lambda: (
            client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
            == "ACTIVE"
        )
    )
    put(client, stream, [(f"k{i}", f"after-{i}".encode()) for i in range(50)])
    async with async_client(kinesis_endpoint) as aclient:
        reader = PollingShardReader(aclient, stream, parent.shard_id, shard=parent, config=FAST)
        records, batches = await read_until(aiter(reader), 10_000)
        assert batches[-1].end_of_shard
        assert {c.parent_shard_id for c in batches[-1].child_shards} == {parent.shard_id}
        assert len(batches[-1].child_shards) == 2
        assert sorted(r.data for r in records) == sorted(f"before-{i}".encode() for i in range(50))
        after: list[bytes] = []
        for child in batches[-1].child_shards:
            child_reader = PollingShardReader(aclient, stream, child.shard_id, config=FAST, stop_at_tip=True)
            async for batch in child_reader:
                after.extend(r.data for r in batch.records)
    assert sorted(after) == sorted(f"after-{i}".encode() for i in range(50))


async def test_fan_out_delivers_and_resubscribes_without_gap_or_duplicate(kinesis_endpoint: str) -> None:
    client = sync_client(kinesis_endpoint)
    stream = create_stream(client, 1)
    (shard,) = list_shards_sync(client, stream_name=stream)
    # short subscriptions, so the test sees several re-subscriptions (and ResourceInUse back-offs)
    config = ReaderConfig(
        subscription_seconds=1.0, resubscribe_backoff_initial=0.5, resubscribe_backoff_max=2.0
    )
    total = 300
    subscribed = asyncio.Condition()
    opened = 0

    class CountSubscriptions:
        def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
            nonlocal opened
            if name == "subscriptions":
                opened += 1

                async def notify() -> None:
                    async with subscribed:
                        subscribed.notify_all()

                asyncio.get_running_loop().create_task(notify())

    with tolerate_missing_initial_response():
        async with async_client(kinesis_endpoint) as aclient:
            arn = await stream_arn(aclient, stream)
            consumer_arn = await ensure_consumer(aclient, arn, "efo-test")
            assert await ensure_consumer(aclient, arn, "efo-test") == consumer_arn  # reused
            reader = FanOutShardReader(
                aclient,
                consumer_arn,
                stream,
                shard.shard_id,
                shard=shard,
                config=config,
                observer=CountSubscriptions(),
            )

            async def produce() -> None:
                for wave in range(6):
                    await asyncio.to_thread(
                        put, client, stream, [(f"k{i}", f"w{wave}-{i}".encode()) for i in range(total // 6)]
                    )
                    if wave == 5:
                        return
                    # the next wave goes in only after the reader re-subscribed at least once more
                    target = opened + 1

                    def reached(target: int = target) -> bool:
                        return opened >= target

                    async with subscribed:
                        await asyncio.wait_for(subscribed.wait_for(reached), 60)

            producer = asyncio.create_task(produce())
            received, _ = await read_until(aiter(reader), total)
            await producer
    assert reader.subscriptions >= 3
    datas = [r.data for r in received]
    assert len(datas) == len(set(datas)) == total
    sequence = [int(r.position.sequence_number) for r in received]  # type: ignore[union-attr]
    assert sequence == sorted(sequence)
