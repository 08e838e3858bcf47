"""KafkaSource's failure paths against an in-memory stand-in for confluent_kafka.Consumer.

The stand-in behaves as librdkafka does where it matters here: rebalance callbacks and
``error_cb`` run inside ``consume()`` on the consuming thread, and an exception raised by a
rebalance callback comes out of ``consume()``.  Every wait is bounded (``asyncio.wait_for``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from consumers.kafka import KafkaConsumerConfig, KafkaSource
from consumers.pipeline import Pipeline, PipelineConfig
from consumers.sinks.memory import MemorySink
from shardline.errormap import from_kafka_error
from shardline.errors import ClosedError, ShardlineError
from shardline.kafka_config import KafkaClientConfig
from shardline.metrics import GuardedObserver
from tests.unit.consumers.kafka_lag_doubles import NothingFetchedYet

BOUND = 5.0  # seconds; every scenario takes milliseconds when nothing hangs
CLIENT = KafkaClientConfig(bootstrap_servers="127.0.0.1:9")


@dataclass
class Message:
    topic_name: str
    partition_id: int
    offset_value: int
    error_value: KafkaError | None = None

    def error(self) -> KafkaError | None:
        return self.error_value

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return self.partition_id

    def offset(self) -> int:
        return self.offset_value

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return f"v{self.offset_value}".encode()

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)


class FakeConsumer(NothingFetchedYet):
    """Assigns partition t/0, delivers ``rounds`` of messages, revokes and reassigns in between."""

    def __init__(self, conf: dict[str, Any], rounds: list[list[Message]]) -> None:
        self.error_cb = conf["error_cb"]
        self.rounds = list(rounds)
        self.on_assign: Any = None
        self.on_revoke: Any = None
        self.stored: list[int] = []
        self.commits = 0
        self.closed = threading.Event()
        self.release_close = threading.Event()
        self.release_close.set()
        self.consumed_everything = threading.Event()
        self.revokes = 0
        self._assigned = False

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any) -> None:
        self.on_assign, self.on_revoke = on_assign, on_revoke

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        partitions = [TopicPartition("t", 0)]
        if self.rounds:
            if self._assigned:
                self.revokes += 1
                self.on_revoke(self, partitions)  # a rebalance between two fetches
            self.on_assign(self, partitions)
            self._assigned = True
            self.error_cb(KafkaError(KafkaError._TRANSPORT, "broker connection reset"))
            return self.rounds.pop(0)
        self.consumed_everything.set()
        time.sleep(timeout)  # librdkafka waits up to the poll timeout for messages
        return []

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        self.stored.extend(tp.offset for tp in offsets)

    def commit(self, asynchronous: bool = True) -> None:
        self.commits += 1

    def close(self) -> None:
        self.release_close.wait(BOUND * 2)
        self.closed.set()


class RaisingObserver:
    def __init__(self) -> None:
        self.calls = 0

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.calls += 1
        raise RuntimeError("observer bug")


def _source(rounds: list[list[Message]], **kwargs: Any) -> tuple[KafkaSource, list[FakeConsumer]]:
    built: list[FakeConsumer] = []

    def factory(conf: dict[str, Any]) -> FakeConsumer:
        built.append(FakeConsumer(conf, rounds))
        return built[-1]

    config = KafkaConsumerConfig(group_id="g", poll_timeout_s=0.01)
    return KafkaSource(["t"], CLIENT, config, consumer_factory=factory, **kwargs), built


async def test_a_raising_observer_on_rebalances_errors_and_records_never_stops_the_source() -> None:
    transient = KafkaError(KafkaError._TRANSPORT, "fetch failed")  # a non-fatal per-message error
    rounds = [
        [Message("t", 0, 0), Message("t", 0, 1), Message("t", 0, 0, error_value=transient)],
        [Message("t", 0, 2)],
    ]
    observer = RaisingObserver()
    source, (consumer,) = _source(rounds, observer=observer)
    sink = MemorySink()
    config = PipelineConfig(checkpoint_interval=0.01)
    pipeline = Pipeline(source, sink, config=config, observer=RaisingObserver())
    run = asyncio.create_task(pipeline.run())
    await asyncio.wait_for(asyncio.to_thread(consumer.consumed_everything.wait, BOUND), BOUND)
    assert consumer.consumed_everything.is_set() and not run.done()
    await asyncio.wait_for(pipeline.close(), BOUND)
    stats = await asyncio.wait_for(run, BOUND)
    assert stats.records_out == 3 and len(sink.items) == 3
    # assigned twice, revoked once, two client errors, one message error, ...: all raised, all contained
    guarded = source._observer
    assert isinstance(guarded, GuardedObserver) and guarded.failures == observer.calls >= 6
    assert consumer.stored and max(consumer.stored) == 3  # the next offset after the last record
    assert consumer.revokes == 1 and consumer.commits == 2  # on revoke and on close
    assert consumer.closed.is_set()


async def test_a_fatal_consumer_error_stops_the_run_with_its_cause() -> None:
    fatal = KafkaError(KafkaError._FENCED, "fenced by a newer member", fatal=True)
    source, (consumer,) = _source([[Message("t", 0, 0), Message("t", 0, 1, error_value=fatal)]])
    expected = type(from_kafka_error(fatal))
    assert issubclass(expected, ShardlineError)
    with pytest.raises(expected):
        await asyncio.wait_for(Pipeline(source, MemorySink(), config=PipelineConfig()).run(), BOUND)
    assert consumer.closed.is_set()  # run() closed the source after the failure


async def test_close_with_a_timeout_returns_while_the_client_is_still_closing() -> None:
    source, (consumer,) = _source([[Message("t", 0, 0)]])
    consumer.release_close.clear()  # the broker does not answer the leave-group request
    batches = aiter(source.batches())
    first = await asyncio.wait_for(anext(batches), BOUND)
    assert [r.data for r in first.records] == [b"v0"]
    await asyncio.wait_for(source.close(timeout=0.05), BOUND)
    assert not consumer.closed.is_set()  # close() returned; the client finishes on its own thread
    with pytest.raises(StopAsyncIteration):  # the fetch loop ends at its next turn
        await asyncio.wait_for(anext(batches), BOUND)
    with pytest.raises(ClosedError):
        await asyncio.wait_for(anext(aiter(source.batches())), BOUND)
    consumer.release_close.set()
    assert await asyncio.wait_for(asyncio.to_thread(consumer.closed.wait, BOUND), BOUND)
    await asyncio.wait_for(source.close(timeout=0.05), BOUND)  # a second close does nothing


class DroppedMember(FakeConsumer):
    """A member the group already dropped: every commit fails as the broker answers it."""

    def commit(self, asynchronous: bool = True) -> None:
        self.commits += 1
        raise KafkaException(KafkaError(KafkaError.ILLEGAL_GENERATION, "illegal generation"))


async def test_a_commit_refused_on_revoke_does_not_stop_the_consumer() -> None:
    # a slow sink past max.poll.interval.ms gets its member dropped: the commit of the revoke
    # callback fails with ILLEGAL_GENERATION, which stopped the whole consumer
    rounds = [[Message("t", 0, 0)], [Message("t", 0, 1)]]
    built: list[FakeConsumer] = []

    def factory(conf: dict[str, Any]) -> FakeConsumer:
        built.append(DroppedMember(conf, rounds))
        return built[-1]

    source = KafkaSource(
        ["t"], CLIENT, KafkaConsumerConfig(group_id="g", poll_timeout_s=0.01), consumer_factory=factory
    )
    batches = aiter(source.batches())
    first = await asyncio.wait_for(anext(batches), BOUND)
    second = await asyncio.wait_for(anext(batches), BOUND)  # read after the revoke that failed
    assert [r.data for r in (*first.records, *second.records)] == [b"v0", b"v1"]
    (consumer,) = built
    assert consumer.revokes == 1 and consumer.commits == 1
    await asyncio.wait_for(source.close(timeout=1), BOUND)


class RevokedWhileCommitting(FakeConsumer):
    """Serves a revocation on the consume thread (its waiting ``consume()``), as librdkafka
    does, and holds the revoke's commit until the event loop checkpointed meanwhile.

    A commit sends the offsets stored when it is called; ``committed`` keeps each one's."""

    def __init__(self, conf: dict[str, Any], rounds: list[list[Message]]) -> None:
        super().__init__(conf, rounds)
        self.committed: list[list[int]] = []
        self.committing = threading.Event()
        self.checkpointed = threading.Event()

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        partitions = [TopicPartition("t", 0)]
        if not self._assigned:
            self._assigned = True
            self.on_assign(self, partitions)
            return [Message("t", 0, 0)]
        if timeout > 0 and not self.revokes:
            self.revokes += 1
            self.on_revoke(self, partitions)
            return []
        time.sleep(timeout)
        return []

    def commit(self, asynchronous: bool = True) -> None:
        self.commits += 1
        self.committed.append(list(self.stored))
        if not self.checkpointed.is_set():
            self.committing.set()
            self.checkpointed.wait(BOUND)


async def test_a_checkpoint_during_the_commit_on_revoke_is_either_committed_or_refused() -> None:
    # the revoke committed first and marked the partitions revoked after: a checkpoint from the
    # event loop in between stored an offset, returned True, and the commit never carried it
    built: list[RevokedWhileCommitting] = []

    def factory(conf: dict[str, Any]) -> RevokedWhileCommitting:
        built.append(RevokedWhileCommitting(conf, []))
        return built[-1]

    source = KafkaSource(
        ["t"], CLIENT, KafkaConsumerConfig(group_id="g", poll_timeout_s=0.01), consumer_factory=factory
    )
    batches = aiter(source.batches())
    first = await asyncio.wait_for(anext(batches), BOUND)
    (consumer,) = built
    waiting = asyncio.ensure_future(anext(batches))  # the next fetch hops to the consume thread
    try:
        assert await asyncio.wait_for(asyncio.to_thread(consumer.committing.wait, BOUND), BOUND)
        stored = await source.checkpoint(first.partition, first.records[-1].position)
    finally:
        consumer.checkpointed.set()
    assert consumer.committed == [[]]  # the revoke's commit carried no offset
    assert not stored and consumer.stored == []  # so the checkpoint must not claim it stored one
    await asyncio.wait_for(source.stop(), BOUND)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, BOUND)
    await asyncio.wait_for(source.close(timeout=1), BOUND)
