"""KafkaSource hears how its offset commits went (``on_commit``), not only librdkafka's log.

librdkafka commits stored offsets on its own timer and reports each outcome to ``on_commit``,
served inside ``consume()``.  The stand-in for confluent_kafka.Consumer answers every commit
with the error a test sets, as a broker refusing it would; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, TopicPartition

from consumers.kafka import KafkaConsumerConfig, KafkaSource
from consumers.pipeline import Pipeline, PipelineConfig
from consumers.sinks.memory import MemorySink
from shardline import metrics_events as events
from shardline.errors import AccessDeniedError, CheckpointError
from shardline.kafka_config import KafkaClientConfig
from tests.unit.consumers.kafka_lag_doubles import NothingFetchedYet

BOUND = 5.0
CLIENT = KafkaClientConfig(bootstrap_servers="127.0.0.1:9")
PARTITION = TopicPartition("t", 0)


@dataclass
class Committed:
    """A partition of a commit's outcome, as ``on_commit`` receives it (a ``TopicPartition``,
    whose ``error`` confluent-kafka alone can set)."""

    topic: str
    partition: int
    offset: int | None
    error: KafkaError | None = None


class CommittingConsumer(NothingFetchedYet):
    """Hands out ``messages`` of t/0 once, then nothing.  Once an offset is stored, each
    ``consume()`` reports one automatic commit of it to ``on_commit``, answered with the next
    of ``answers`` (``None``: committed), at the request level or, with ``per_partition``, as
    the partition's own error; with no answer queued it reports nothing (no commit due)."""

    def __init__(self, conf: dict[str, Any], messages: int) -> None:
        self.on_commit = conf.get("on_commit", lambda err, partitions: None)
        self.messages = [
            Message(topic="t", partition=0, offset=offset, value=b"v", key=b"k") for offset in range(messages)
        ]
        self.answers: deque[KafkaError | None] = deque()
        self.per_partition = False
        self.stored: int | None = None
        self.commits_reported = 0
        self.reported = threading.Event()

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any) -> None:
        on_assign(self, [PARTITION])

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        if self.stored is not None and self.answers:
            self._report_commit(self.answers.popleft())
        if self.messages:
            handed, self.messages = self.messages, []
            return handed
        time.sleep(min(timeout, 0.005))
        return []

    def _report_commit(self, answer: KafkaError | None) -> None:
        if self.per_partition and answer is not None:
            self.on_commit(None, [Committed(PARTITION.topic, PARTITION.partition, self.stored, answer)])
        else:
            self.on_commit(answer, [Committed(PARTITION.topic, PARTITION.partition, self.stored)])
        self.commits_reported += 1
        if not self.answers:
            self.reported.set()

    def answer_next(self, *answers: KafkaError | None) -> None:
        self.reported.clear()
        self.answers.extend(answers)

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        self.stored = offsets[0].offset

    def commit(self, asynchronous: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.seen.append((name, dimensions))


def _source(messages: int, observer: Events | None = None) -> tuple[KafkaSource, list[CommittingConsumer]]:
    built: list[CommittingConsumer] = []

    def factory(conf: dict[str, Any]) -> CommittingConsumer:
        built.append(CommittingConsumer(conf, messages))
        return built[-1]

    config = KafkaConsumerConfig(group_id="g", poll_timeout_s=0.01)
    return KafkaSource(["t"], CLIENT, config, consumer_factory=factory, observer=observer), built


async def _reported(consumer: CommittingConsumer) -> None:
    """Wait until every queued commit answer was reported (the fetch loop calls consume())."""
    assert await asyncio.wait_for(asyncio.to_thread(consumer.reported.wait, BOUND), BOUND)


@pytest.mark.parametrize("per_partition", [False, True])
async def test_commits_refused_for_good_stop_the_run_instead_of_counting_checkpoints(
    per_partition: bool,
) -> None:
    # a member allowed to read but not to commit (MSK IAM without kafka-cluster:AlterGroup):
    # librdkafka only logged each refused automatic commit, so the run went on for good,
    # every checkpoint counted as written, and each restart read everything again
    source, (consumer,) = _source(messages=3)
    consumer.answer_next(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED, "not authorized"))
    consumer.per_partition = per_partition
    config = PipelineConfig(checkpoint_interval=0.01)
    with pytest.raises(CheckpointError) as raised:
        await asyncio.wait_for(Pipeline(source, MemorySink(), config=config).run(), BOUND)
    assert not raised.value.retriable
    assert isinstance(raised.value.__cause__, AccessDeniedError)
    assert consumer.commits_reported >= 1


async def test_commits_failing_for_a_while_are_retried_and_counted_not_fatal() -> None:
    observer = Events()
    source, (consumer,) = _source(messages=3, observer=observer)
    batches = aiter(source.batches())
    batch = await asyncio.wait_for(anext(batches), BOUND)
    last = batch.records[-1].position
    assert await source.checkpoint(batch.partition, last)
    waiting = asyncio.ensure_future(anext(batches))  # keeps fetching: each consume() reports
    consumer.answer_next(
        KafkaError(KafkaError.REBALANCE_IN_PROGRESS),
        KafkaError(KafkaError.COORDINATOR_NOT_AVAILABLE),
        KafkaError(KafkaError.UNKNOWN_MEMBER_ID),  # dropped from the group: librdkafka rejoins
        KafkaError(KafkaError._WAIT_COORD),  # no coordinator for session.timeout.ms
        KafkaError(KafkaError._NO_OFFSET),  # nothing to commit: no failure at all
    )
    await _reported(consumer)
    assert await source.checkpoint(batch.partition, last)  # none of them stops checkpoints
    failures = [dims["error"] for name, dims in observer.seen if name == events.KAFKA_CLIENT_ERROR]
    assert failures == ["TransientServiceError", "TransientServiceError", "LeaseLostError", "ServiceError"]
    await asyncio.wait_for(source.stop(), BOUND)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, BOUND)
    await asyncio.wait_for(source.close(timeout=1), BOUND)


async def test_a_refusal_ends_the_fetch_loop_and_a_commit_that_succeeds_again_clears_it() -> None:
    source, (consumer,) = _source(messages=2)
    batches = aiter(source.batches())
    batch = await asyncio.wait_for(anext(batches), BOUND)
    assert await source.checkpoint(batch.partition, batch.records[0].position)
    consumer.answer_next(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED))
    # nothing new to checkpoint: the fetch loop itself raises the refusal at its next turn
    with pytest.raises(CheckpointError):
        await asyncio.wait_for(anext(batches), BOUND)
    with pytest.raises(CheckpointError):
        await source.checkpoint(batch.partition, batch.records[-1].position)
    # the permission granted meanwhile: librdkafka reports the next commit inside consume()
    consumer.on_commit(None, [Committed("t", 0, 2)])
    assert await source.checkpoint(batch.partition, batch.records[-1].position)
    await asyncio.wait_for(source.close(timeout=1), BOUND)
