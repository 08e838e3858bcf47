"""Reader failure paths kinesis-mock never produces, injected into real clients on the wire.

A ``before-call`` hook answers chosen GetRecords calls with the service's own error
(throttling, expired iterator, a 500) without sending them; every other call really goes to
kinesis-mock.  A ``before-parameter-build`` hook on GetShardIterator records where each new iterator
starts, so the tests can assert the reader resumed AFTER the last delivered record.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Callable
from typing import Any, cast

import pytest

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.kinesis import KinesisSource, PollingShardReader, ReaderConfig
from shardline.errors import LeaseLostError
from shardline.records import KinesisPosition
from tests.integration.test_kinesis_readers import async_client, create_stream, put, sync_client
from tests.kinesis_sync import list_shards_sync

pytestmark = pytest.mark.integration


class MaxJitter(random.Random):
    """Pins full jitter to the top of its window, so the back-off ceilings become visible."""

    def uniform(self, a: float, b: float) -> float:
        return b


class _Answer:
    """The little of an HTTP response botocore reads when a hook answers a call."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""
        self.raw = None


class GetRecordsFaults:
    """Answers the GetRecords calls chosen by ``plan(call_number)`` with an error code."""

    def __init__(self, client: Any, plan: Callable[[int], str | None]) -> None:
        self.calls = 0
        self.injected: list[str] = []
        self.iterator_requests: list[dict[str, Any]] = []
        self._plan = plan
        client.meta.events.register("before-call.kinesis.GetRecords", self._get_records)
        client.meta.events.register(
            "before-parameter-build.kinesis.GetShardIterator", self._get_shard_iterator
        )

    def _get_records(self, **_: Any) -> tuple[_Answer, dict[str, Any]] | None:
        call, self.calls = self.calls, self.calls + 1
        code = self._plan(call)
        if code is None:
            return None
        self.injected.append(code)
        status = 500 if code == "InternalFailure" else 400
        return _Answer(status), {
            "Error": {"Code": code, "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }

    def _get_shard_iterator(self, params: dict[str, Any], **_: Any) -> None:
        self.iterator_requests.append(
            {k: params.get(k) for k in ("ShardIteratorType", "StartingSequenceNumber")}
        )


def seq(record: Any) -> str:
    position = record.position
    assert isinstance(position, KinesisPosition)
    return position.sequence_number


class RecordingSleep:
    """Records the back-off delays asked for and yields control without waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


class Counter:
    def __init__(self) -> None:
        self.counts: dict[str, float] = {}

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.counts[name] = self.counts.get(name, 0.0) + value


SMALL_BATCHES = ReaderConfig(get_records_limit=40, throttle_backoff_initial=0.1, throttle_backoff_max=1.0)


async def read_all(reader: PollingShardReader) -> list[Any]:
    records: list[Any] = []
    async for batch in reader:
        records.extend(batch.records)
    return records


def single_shard_stream(endpoint: str, count: int) -> tuple[str, str, list[str]]:
    client = sync_client(endpoint)
    stream = create_stream(client, 1)
    results = put(client, stream, [(f"k{i % 5}", f"r{i}".encode()) for i in range(count)])
    (shard,) = list_shards_sync(client, stream_name=stream)
    return stream, shard.shard_id, [r["SequenceNumber"] for r in results]


async def test_throttled_get_records_backs_off_with_jitter_and_loses_nothing(kinesis_endpoint: str) -> None:
    stream, shard_id, sequences = single_shard_stream(kinesis_endpoint, 200)
    sleep, observer = RecordingSleep(), Counter()
    async with async_client(kinesis_endpoint) as client:
        # calls 1-4 and 7 throttled: a run of throttles, then an isolated one
        faults = GetRecordsFaults(
            client, lambda n: "ProvisionedThroughputExceededException" if n in (1, 2, 3, 4, 7) else None
        )
        reader = PollingShardReader(
            client,
            stream,
            shard_id,
            config=SMALL_BATCHES,
            stop_at_tip=True,
            sleep=sleep,
            observer=observer,
            rng=MaxJitter(),
        )
        records = await asyncio.wait_for(read_all(reader), 120)
    assert faults.injected == ["ProvisionedThroughputExceededException"] * 5
    assert observer.counts["get_records_throttled"] == 5
    assert [seq(r) for r in records] == sequences
    # exponential back-off (jitter pinned to its maximum here), capped, and reset after a success
    throttle_delays = [d for d in sleep.delays if d in (0.1, 0.2, 0.4, 0.8, 1.0)]
    assert throttle_delays[:5] == [0.1, 0.2, 0.4, 0.8, 0.1]
    # throttled calls do not get a new iterator: the held one is still valid
    assert len(faults.iterator_requests) == 1


async def test_expired_iterator_mid_stream_resumes_after_last_delivered(kinesis_endpoint: str) -> None:
    stream, shard_id, sequences = single_shard_stream(kinesis_endpoint, 200)
    async with async_client(kinesis_endpoint) as client:
        faults = GetRecordsFaults(client, lambda n: "ExpiredIteratorException" if n in (2, 4) else None)
        observer = Counter()
        reader = PollingShardReader(
            client, stream, shard_id, config=SMALL_BATCHES, stop_at_tip=True, observer=observer
        )
        delivered: list[str] = []
        resumed_from: list[str | None] = []
        async for batch in reader:
            delivered.extend(seq(r) for r in batch.records)
            resumed_from.append(seq(batch.records[-1]) if batch.records else None)
    assert observer.counts["iterator_expired"] == 2
    # every record exactly once, in order: none skipped, none duplicated
    assert delivered == sequences
    # each replacement iterator starts AFTER the last record delivered before the expiry
    first, *replacements = faults.iterator_requests
    assert first == {"ShardIteratorType": "TRIM_HORIZON", "StartingSequenceNumber": None}
    assert [r["ShardIteratorType"] for r in replacements] == ["AFTER_SEQUENCE_NUMBER"] * 2
    assert all(r["StartingSequenceNumber"] in resumed_from for r in replacements)


async def test_slow_handler_gets_a_fresh_iterator_after_the_last_delivered(kinesis_endpoint: str) -> None:
    stream, shard_id, sequences = single_shard_stream(kinesis_endpoint, 120)
    now = [0.0]
    async with async_client(kinesis_endpoint) as client:
        faults = GetRecordsFaults(client, lambda n: None)
        reader = PollingShardReader(
            client, stream, shard_id, config=SMALL_BATCHES, stop_at_tip=True, clock=lambda: now[0]
        )
        delivered: list[str] = []
        async for batch in reader:
            delivered.extend(seq(r) for r in batch.records)
            now[0] += 400.0  # the handler took longer than an iterator lives
    assert delivered == sequences
    after = [r for r in faults.iterator_requests if r["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER"]
    assert after and after[0]["StartingSequenceNumber"] == sequences[39]


async def test_transient_errors_retried_from_a_fresh_iterator(kinesis_endpoint: str) -> None:
    stream, shard_id, sequences = single_shard_stream(kinesis_endpoint, 80)
    async with async_client(kinesis_endpoint) as client:
        faults = GetRecordsFaults(client, lambda n: "InternalFailure" if n in (1, 2) else None)
        reader = PollingShardReader(
            client, stream, shard_id, config=SMALL_BATCHES, stop_at_tip=True, sleep=RecordingSleep()
        )
        records = await asyncio.wait_for(read_all(reader), 120)
    assert [seq(r) for r in records] == sequences
    assert faults.injected == ["InternalFailure", "InternalFailure"]
    assert len(faults.iterator_requests) == 3


async def test_lease_taken_by_another_worker_stops_the_shard(kinesis_endpoint: str) -> None:
    stream, shard_id, _ = single_shard_stream(kinesis_endpoint, 50)
    store = MemoryCheckpointStore()
    async with async_client(kinesis_endpoint) as client:
        source = KinesisSource(stream, store=store, owner="stale", client=client, config=SMALL_BATCHES)
        batches = cast(AsyncGenerator[Any, None], source.batches())
        batch = await asyncio.wait_for(anext(batches), 60)
        last = batch.records[-1].position
        assert isinstance(last, KinesisPosition)
        await source.checkpoint(shard_id, last)
        await store.acquire(shard_id, "new-owner")  # another worker took over (e.g. after a pause)
        with pytest.raises(LeaseLostError):
            await source.checkpoint(shard_id, last)
        assert source.shards == []
        with pytest.raises(LeaseLostError):
            await source.checkpoint(shard_id, last)
        await source.stop()
        await batches.aclose()
    lease = await store.get(shard_id)
    assert lease is not None and lease.owner == "new-owner" and lease.checkpoint == last.sequence_number
