"""PollingShardReader and KinesisSource against an in-memory Kinesis double (unit level)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aws_kinesis_agg.aggregator import RecordAggregator
from botocore.exceptions import ClientError

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.kinesis import (
    LATEST,
    CallBudget,
    KinesisSource,
    PollingShardReader,
    ReaderConfig,
    stop_after_sequence,
)
from shardline.records import KinesisPosition
from shardline.shardmath import ShardInfo

NOW = datetime(2024, 1, 1, tzinfo=UTC)


class FakeKinesis:
    """One open shard whose records are a list; iterators are indexes into it."""

    def __init__(self, records: list[tuple[str, bytes]], *, limit: int = 10) -> None:
        self.records = [
            {
                "SequenceNumber": str(1000 + i),
                "PartitionKey": k,
                "Data": d,
                "ApproximateArrivalTimestamp": NOW,
            }
            for i, (k, d) in enumerate(records)
        ]
        self.limit = limit
        self.get_records_calls = 0
        self.called = asyncio.Event()

    async def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        kind = kwargs["ShardIteratorType"]
        if kind == "TRIM_HORIZON":
            index = 0
        elif kind == "AFTER_SEQUENCE_NUMBER":
            index = int(kwargs["StartingSequenceNumber"]) - 1000 + 1
        else:
            index = int(kwargs["StartingSequenceNumber"]) - 1000
        return {"ShardIterator": str(index)}

    async def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        self.get_records_calls += 1
        self.called.set()
        index = int(ShardIterator)
        chunk = self.records[index : index + min(Limit, self.limit)]
        return {"Records": chunk, "NextShardIterator": str(index + len(chunk)), "MillisBehindLatest": 0}

    async def list_shards(self, **_: Any) -> dict[str, Any]:
        return {
            "Shards": [
                {
                    "ShardId": "shard-0",
                    "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(2**128 - 1)},
                    "SequenceNumberRange": {"StartingSequenceNumber": "1000"},
                }
            ]
        }


class Counter:
    def __init__(self) -> None:
        self.counts: dict[str, float] = {}

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.counts[name] = self.counts.get(name, 0.0) + value


class InstantSleep:
    """Fake time: sleeping advances :meth:`clock` at once and only yields to the loop."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def aggregate(entries: list[tuple[str, bytes, str | None]]) -> tuple[str, bytes]:
    aggregator = RecordAggregator()
    for key, data, ehk in entries:
        aggregator.add_user_record(key, data, ehk)
    pk, _ehk, blob = aggregator.clear_and_get().get_contents()
    return pk, blob


async def test_sub_records_outside_the_shard_range_are_delivered_and_counted() -> None:
    pk, blob = aggregate([("a", b"in", "5"), ("b", b"out", str(2**100)), ("c", b"in2", "6")])
    client = FakeKinesis([(pk, blob)])
    shard = ShardInfo("shard-0", 0, 2**64)
    observer = Counter()
    reader = PollingShardReader(
        client, "s", "shard-0", shard=shard, observer=observer, stop_at_tip=True, sleep=InstantSleep()
    )
    records = [r async for batch in reader for r in batch.records]
    assert [r.data for r in records] == [b"in", b"out", b"in2"]
    assert [r.position.sub_sequence_number for r in records] == [0, 1, 2]  # type: ignore[union-attr]
    assert observer.counts["records_outside_shard_range"] == 1


async def test_stop_after_sequence_bounds_the_read() -> None:
    client = FakeKinesis([(f"k{i}", b"x") for i in range(30)], limit=7)
    reader = PollingShardReader(
        client, "s", "shard-0", stop_at=stop_after_sequence("1012"), sleep=InstantSleep()
    )
    records = [r async for batch in reader for r in batch.records]
    last = records[-1].position
    assert isinstance(last, KinesisPosition)
    assert len(records) == 13 and last.sequence_number == "1012"
    assert reader.finished


async def test_idle_back_off_doubles_up_to_the_cap_at_the_tip() -> None:
    client = FakeKinesis([])
    sleep = InstantSleep()
    config = ReaderConfig(idle_backoff_initial=0.1, idle_backoff_max=0.35)
    unlimited = CallBudget(calls_per_second=1e9, burst=1e9)  # only the idle pauses sleep here
    reader = PollingShardReader(client, "s", "shard-0", config=config, sleep=sleep, budget=unlimited)
    batches = aiter(reader)

    async def first() -> None:
        await anext(batches)

    task = asyncio.create_task(first())
    while client.get_records_calls < 5:
        await asyncio.sleep(0)
    task.cancel()
    assert sleep.delays[:4] == [0.1, 0.2, 0.35, 0.35]


async def test_source_pauses_a_shard_when_its_queue_is_full() -> None:
    client = FakeKinesis([(f"k{i}", b"x") for i in range(200)], limit=10)
    fake = InstantSleep()
    source = KinesisSource(
        "s",
        store=MemoryCheckpointStore(),
        owner="w",
        client=client,
        config=ReaderConfig(max_pending_batches=2),
        sleep=fake,
        clock=fake.clock,
    )
    batches = source.batches()
    first = await anext(batches)
    assert len(first.records) == 10
    # one batch handed out, two queued, one read and waiting for a slot: then the reader stops calling
    for _ in range(50):
        await asyncio.sleep(0)
    assert client.get_records_calls == 4
    await anext(batches)
    for _ in range(50):
        await asyncio.sleep(0)
    assert client.get_records_calls == 5
    await source.stop()
    rest = [b async for b in batches]
    assert len(rest) == 2  # what was already read is still delivered after stop()


class ExpiringLatestKinesis:
    """A shard where a record arrives after the LATEST iterator was taken, and that iterator
    expires before the first GetRecords: the reader must not ask for LATEST again."""

    def __init__(self) -> None:
        self.iterator_requests: list[dict[str, Any]] = []

    async def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        self.iterator_requests.append(kwargs)
        return {"ShardIterator": f"it-{len(self.iterator_requests)}"}

    async def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        if ShardIterator == "it-1":
            raise ClientError(
                {"Error": {"Code": "ExpiredIteratorException", "Message": "Iterator expired"}}, "GetRecords"
            )
        arrived = {
            "SequenceNumber": "1001",
            "PartitionKey": "k",
            "Data": b"written-in-between",
            "ApproximateArrivalTimestamp": NOW,
        }
        return {"Records": [arrived], "NextShardIterator": None, "ChildShards": [], "MillisBehindLatest": 0}


async def test_expired_latest_iterator_resumes_at_the_time_of_the_first_one() -> None:
    client = ExpiringLatestKinesis()
    taken_at = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    reader = PollingShardReader(client, "s", "shard-0", LATEST, wall_clock=lambda: taken_at)
    batches = [batch async for batch in reader]
    kinds = [request["ShardIteratorType"] for request in client.iterator_requests]
    assert kinds == ["LATEST", "AT_TIMESTAMP"]
    assert client.iterator_requests[1]["Timestamp"] == taken_at
    assert [record.data for batch in batches for record in batch.records] == [b"written-in-between"]


class RaisingObserver:
    def __init__(self) -> None:
        self.calls = 0

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.calls += 1
        raise RuntimeError("observer bug")


async def test_a_raising_observer_never_stops_the_reader() -> None:
    client = FakeKinesis([(f"k{i}", b"x") for i in range(30)], limit=7)
    observer = RaisingObserver()
    reader = PollingShardReader(
        client, "s", "shard-0", observer=observer, stop_at_tip=True, sleep=InstantSleep()
    )
    records = await asyncio.wait_for(_read_all(reader), 5)
    assert len(records) == 30
    assert observer.calls > 0


async def _read_all(reader: PollingShardReader) -> list[Any]:
    return [r async for batch in reader for r in batch.records]


class ResponseWithoutDataFirst(FakeKinesis):
    """The first GetRecords answer carries a record without its Data (what botocore makes of a
    body in another shape); the next ones are whole."""

    async def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        response = await super().get_records(ShardIterator, Limit)
        if self.get_records_calls == 1:
            response["Records"] = [{"SequenceNumber": "1000", "PartitionKey": "a"}]
        return response


async def test_an_answer_with_a_record_without_data_is_retried_not_a_key_error() -> None:
    kinesis = ResponseWithoutDataFirst([("a", b"x"), ("b", b"y")])
    sleep = InstantSleep()
    reader = PollingShardReader(kinesis, "s", "shard-0", stop_at_tip=True, sleep=sleep)
    # before: KeyError 'Data' from the record conversion stopped the run
    batches = await asyncio.wait_for(_collect(reader), 5)
    assert [record.data for batch in batches for record in batch.records] == [b"x", b"y"]
    assert kinesis.get_records_calls >= 2


async def _collect(reader: PollingShardReader) -> list[Any]:
    return [batch async for batch in reader]
