"""Enhanced fan-out subscriptions made to fail or to call a raising observer (unit level).

A subscription's event stream raising a programming error, or the subscription task dying
on a malformed answer, surfaces through ``KinesisSource.batches()`` and ``Pipeline.run()``
with the cause, within a bound (``asyncio.wait_for``: a hang fails the test); a raising
observer inside the fan-out reader is contained.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.kinesis import FanOutShardReader, KinesisSource
from consumers.pipeline import Pipeline, PipelineConfig
from consumers.sinks.base import EntryResult
from consumers.sinks.memory import MemorySink
from shardline.metrics import GuardedObserver
from shardline.records import ConsumedRecord
from tests.unit.consumers.kinesis.test_kinesis_efo_unit import RefusedThenServed

BOUND = 5.0  # seconds; every scenario takes milliseconds when nothing hangs
NOW = datetime(2024, 1, 1, tzinfo=UTC)


def _event(first: int, count: int) -> dict[str, Any]:
    records = [
        {"SequenceNumber": str(n), "PartitionKey": "k", "Data": b"x", "ApproximateArrivalTimestamp": NOW}
        for n in range(first, first + count)
    ]
    last = str(first + count - 1)
    return {
        "SubscribeToShardEvent": {
            "Records": records,
            "MillisBehindLatest": 0,
            "ContinuationSequenceNumber": last,
        }
    }


class EventStream:
    """Yields ``events``, then raises ``failure`` or (without one) stays open until cancelled."""

    def __init__(self, events: list[dict[str, Any]], failure: BaseException | None) -> None:
        self._events = events
        self._failure = failure
        self.closed = False

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        for event in self._events:
            yield event
        if self._failure is not None:
            raise self._failure
        await asyncio.Event().wait()

    def close(self) -> None:
        self.closed = True


class FanOutKinesis:
    """One open shard served over SubscribeToShard; ``answer`` builds each subscription's reply."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.subscriptions = 0

    async def describe_stream_summary(self, **_: Any) -> dict[str, Any]:
        return {"StreamDescriptionSummary": {"StreamARN": "arn:aws:kinesis:us-east-1:1:stream/s"}}

    async def register_stream_consumer(self, **_: Any) -> dict[str, Any]:
        return {"Consumer": {"ConsumerStatus": "ACTIVE", "ConsumerARN": "arn:consumer"}}

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

    async def subscribe_to_shard(self, **_: Any) -> dict[str, Any]:
        self.subscriptions += 1
        return self.answer


class RaisingObserver:
    def __init__(self) -> None:
        self.calls = 0

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.calls += 1
        raise RuntimeError("observer bug")


class CountingSink(MemorySink):
    """Sets ``filled`` once ``expected`` records are held."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.filled = asyncio.Event()

    async def write(self, records: Sequence[ConsumedRecord]) -> list[EntryResult]:
        results = await super().write(records)
        if len(self.items) >= self.expected:
            self.filled.set()
        return results


def _source(client: FanOutKinesis, observer: Any = None) -> KinesisSource:
    return KinesisSource(
        "s",
        store=MemoryCheckpointStore(),
        owner="w",
        mode="efo",
        consumer_name="c",
        client=client,
        observer=observer,
    )


async def test_a_programming_error_in_the_event_stream_stops_the_run_with_its_cause() -> None:
    stream = EventStream([_event(1000, 3)], failure=TypeError("'NoneType' object is not subscriptable"))
    client = FanOutKinesis({"EventStream": stream})
    source = _source(client)
    sink = MemorySink()
    pipeline = Pipeline(source, sink, config=PipelineConfig(checkpoint_interval=3600))
    with pytest.raises(TypeError, match="subscriptable"):
        await asyncio.wait_for(pipeline.run(), BOUND)
    assert client.subscriptions == 1  # a bug is not retried as if the stream had broken
    assert stream.closed
    assert len(sink.items) == 3  # what was read before the failure is still written


async def test_a_subscription_task_dying_on_a_malformed_answer_surfaces_through_batches() -> None:
    client = FanOutKinesis({})  # no EventStream: the subscription task fails with KeyError
    source = _source(client)
    with pytest.raises(KeyError, match="EventStream"):
        await asyncio.wait_for(anext(aiter(source.batches())), BOUND)
    await asyncio.wait_for(source.close(timeout=BOUND), BOUND)


async def test_a_raising_observer_inside_the_fan_out_reader_is_contained() -> None:
    client = FanOutKinesis({"EventStream": EventStream([_event(1000, 2), _event(1002, 3)], failure=None)})
    observer = RaisingObserver()
    source = _source(client, observer)
    sink = CountingSink(expected=5)
    pipeline = Pipeline(source, sink, config=PipelineConfig(checkpoint_interval=3600))
    run = asyncio.create_task(pipeline.run())
    await asyncio.wait_for(sink.filled.wait(), BOUND)
    assert not run.done()
    await asyncio.wait_for(pipeline.close(), BOUND)
    stats = await asyncio.wait_for(run, BOUND)
    assert stats.records_out == 5 and stats.checkpoints == 1
    guarded = source._observer
    assert isinstance(guarded, GuardedObserver) and guarded.failures == observer.calls > 0


async def test_a_raising_observer_sees_every_resubscription_and_the_reader_still_reads() -> None:
    client = RefusedThenServed("ResourceInUseException", "LimitExceededException")
    observer = RaisingObserver()

    async def no_sleep(seconds: float) -> None:
        return None

    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", sleep=no_sleep, observer=observer)

    async def collect() -> list[Any]:
        return [batch async for batch in reader]

    batches = await asyncio.wait_for(collect(), BOUND)
    assert [record.data for batch in batches for record in batch.records] == [b"in-between"]
    assert batches[-1].end_of_shard
    # resource-in-use, retry, subscription(s), lag and records read: each raised and was contained
    assert observer.calls >= 5
