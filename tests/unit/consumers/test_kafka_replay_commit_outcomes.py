"""A replay with a ``checkpoint_group`` hears how its commits to that group went.

Its checkpoints are committed asynchronously; librdkafka reports each outcome to ``on_commit``
inside ``consume()``.  Without the callback a commit refused for good (no right to commit to
the group) was only logged by librdkafka: every checkpoint counted as kept and a rerun read it
all again.  The stand-in for confluent_kafka.Consumer answers each commit with the error a test
sets, reported at the next ``consume()``; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, TopicPartition

from consumers.kafka import KafkaReplaySource, OffsetRange
from shardline import metrics_events as events
from shardline.errors import AccessDeniedError, CheckpointError
from shardline.kafka_config import KafkaClientConfig
from shardline.records import KafkaPosition

BOUND = 5.0
CLIENT = KafkaClientConfig(bootstrap_servers="127.0.0.1:9")


class CommitAnswering:
    """t/0 holding offsets 0..9; each asynchronous commit is answered with the next of
    ``answers`` (``None``: committed) at the following ``consume()``."""

    def __init__(self, conf: dict[str, Any], answers: list[KafkaError | None]) -> None:
        self.on_commit = conf["on_commit"]
        self.answers = deque(answers)
        self.due: list[list[TopicPartition]] = []
        self.handed = False
        self.answered = threading.Event()

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, -1001) for tp in partitions]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float, cached: bool
    ) -> tuple[int, int]:
        return 0, 0  # the log starts at offset 0: nothing removed

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        if asynchronous:
            self.due.append(offsets)

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        while self.due:
            offsets = self.due.pop(0)
            self.on_commit(self.answers.popleft() if self.answers else None, offsets)
            self.answered.set()
        if self.handed:
            return []
        self.handed = True
        return [Message(topic="t", partition=0, offset=o, value=b"v") for o in range(5)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        pass

    def close(self) -> None:
        pass


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def on_event(self, name: str, value: float = 1.0, **labels: Any) -> None:
        self.seen.append((name, labels))


async def _checkpoint_after_a_commit(answer: KafkaError) -> tuple[KafkaReplaySource, Events]:
    """Read t/0, checkpoint offset 0, let the next fetch hear the commit's ``answer``."""
    observer = Events()
    consumers: list[CommitAnswering] = []

    def factory(conf: dict[str, Any]) -> CommitAnswering:
        consumers.append(CommitAnswering(conf, [answer]))
        return consumers[-1]

    source = KafkaReplaySource(
        [OffsetRange("t", 0, 0, 10)],
        CLIENT,
        checkpoint_group="replay-g",
        poll_timeout_s=0.0,
        observer=observer,
        consumer_factory=factory,
    )
    batches = source.batches()
    await asyncio.wait_for(anext(batches), BOUND)
    assert await source.checkpoint("t/0", KafkaPosition("t", 0, 0))
    # the next fetch serves the commit's outcome (it hands out nothing more)
    fetch = asyncio.ensure_future(anext(batches))
    assert await asyncio.wait_for(asyncio.to_thread(consumers[0].answered.wait, BOUND), BOUND)
    fetch.cancel()
    await asyncio.gather(fetch, return_exceptions=True)
    return source, observer


async def test_a_commit_refused_for_good_fails_the_next_checkpoint() -> None:
    refused = KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED)
    source, observer = await _checkpoint_after_a_commit(refused)
    try:
        with pytest.raises(CheckpointError) as raised:
            await source.checkpoint("t/0", KafkaPosition("t", 0, 1))
        assert raised.value.retriable is False
        assert isinstance(raised.value.__cause__, AccessDeniedError)
        assert "replay-g" in str(raised.value)
        assert source.checkpoints == {"t/0": 1}  # the refused position is not counted as kept
        assert (events.KAFKA_CLIENT_ERROR, {"error": "AccessDeniedError"}) in observer.seen
    finally:
        await asyncio.wait_for(source.close(), BOUND)


async def test_a_commit_failing_for_a_while_is_counted_not_fatal() -> None:
    away = KafkaError(KafkaError._WAIT_COORD)
    source, observer = await _checkpoint_after_a_commit(away)
    try:
        assert await source.checkpoint("t/0", KafkaPosition("t", 0, 1))
        assert any(name == events.KAFKA_CLIENT_ERROR for name, _ in observer.seen)
    finally:
        await asyncio.wait_for(source.close(), BOUND)
