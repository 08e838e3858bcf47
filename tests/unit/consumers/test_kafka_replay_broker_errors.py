"""KafkaReplaySource's own broker calls end in Shardline errors, not KafkaException.

With the brokers out of reach at the start of a job with a checkpoint group, ``committed()``
times out (``_TIMED_OUT`` after 10 s); when they go away mid-job, the closing commit fails
(``_WAIT_COORD``).  Both reached the job as confluent-kafka's untyped ``KafkaException``, as did a
fatal error raised by ``consume()``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from consumers.kafka import KafkaReplaySource, OffsetRange
from shardline.errors import FatalKafkaError, ServiceError, TransientServiceError
from shardline.kafka_config import KafkaClientConfig
from shardline.records import KafkaPosition

BOUND = 5.0


class Unreachable:
    """A consumer whose broker calls fail as librdkafka's do when no broker answers."""

    def __init__(self, failing: str) -> None:
        self.failing = failing
        self.closed = False

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        if self.failing == "committed":
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Failed to get committed offsets"))
        return [TopicPartition(tp.topic, tp.partition, -1001) for tp in partitions]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float, cached: bool
    ) -> tuple[int, int]:
        if self.failing == "watermarks":
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Failed to query watermark offsets"))
        return 0, 0

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        if self.failing == "consume":
            raise KafkaException(KafkaError(KafkaError._FATAL, "fenced", fatal=True))
        return []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        if self.failing == "commit" and not asynchronous:
            raise KafkaException(KafkaError(KafkaError._WAIT_COORD, "Commit failed"))

    def pause(self, partitions: list[TopicPartition]) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _source(failing: str) -> tuple[KafkaReplaySource, Unreachable]:
    consumer = Unreachable(failing)
    source = KafkaReplaySource(
        [OffsetRange("t", 0, 0, 5)],
        KafkaClientConfig("127.0.0.1:9"),
        checkpoint_group="job",
        poll_timeout_s=0.0,
        consumer_factory=lambda conf: consumer,
    )
    return source, consumer


async def _read(source: KafkaReplaySource) -> None:
    async for _batch in source.batches():
        pass


@pytest.mark.parametrize(
    ("failing", "expected"),
    [
        ("committed", TransientServiceError),
        ("watermarks", TransientServiceError),
        ("consume", FatalKafkaError),
    ],
)
async def test_a_broker_call_of_the_read_fails_typed(failing: str, expected: type[Exception]) -> None:
    source, consumer = _source(failing)
    with pytest.raises(expected) as raised:
        await asyncio.wait_for(_read(source), BOUND)
    assert isinstance(raised.value.__cause__, KafkaException)
    await asyncio.wait_for(source.close(), BOUND)
    assert consumer.closed


async def test_the_closing_commit_fails_typed_and_the_client_is_still_closed() -> None:
    source, consumer = _source("commit")
    await source.checkpoint("t/0", KafkaPosition("t", 0, 3))
    with pytest.raises(ServiceError) as raised:
        await asyncio.wait_for(source.close(), BOUND)
    assert isinstance(raised.value.__cause__, KafkaException)
    assert consumer.closed
