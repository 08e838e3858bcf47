"""A replay or ``tail`` whose topic is deleted while it reads ends with the error, not a wait.

librdkafka reports an assigned partition the cluster no longer has as a non-fatal consumer error
(``UNKNOWN_TOPIC_OR_PART``, ``_UNKNOWN_TOPIC``, ``_UNKNOWN_PARTITION``, once the metadata has said
so for ``topic.metadata.propagation.max.ms``) and fetches nothing more for it.  Counted and passed
over, it left a replay range (or ``tail --until-tip``) waiting forever.  The stand-in for
confluent_kafka.Consumer serves some records, then only that error; every wait is bounded.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import KafkaError, Message, TopicPartition

from consumers.kafka import KafkaReplaySource, OffsetRange
from consumers.tail.kafka import KafkaFollower, KafkaStart
from shardline.errors import ResourceNotFoundError
from shardline.kafka_config import KafkaClientConfig
from shardline.records import KafkaPosition

BOUND = 5.0
CLIENT = KafkaClientConfig(bootstrap_servers="127.0.0.1:9", consumer_close_timeout_s=BOUND)
GONE = [KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION]


class DeletedAfterFive:
    """t/0: offsets 0..4 are read, then the topic is deleted and only ``code`` comes back."""

    code = KafkaError.UNKNOWN_TOPIC_OR_PART

    def __init__(self, conf: dict[str, Any]) -> None:
        self.served = False

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return SimpleNamespace(topics={"t": SimpleNamespace(partitions={0: None})})

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float, cached: bool
    ) -> tuple[int, int]:
        return 0, 5

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        gone = Message(topic="t", partition=0, offset=-1001, error=KafkaError(self.code, "topic t not found"))
        if self.served:
            return [gone]
        self.served = True
        return [Message(topic="t", partition=0, offset=o, value=b"v") for o in range(5)] + [gone]

    def pause(self, partitions: list[TopicPartition]) -> None:
        pass

    def close(self) -> None:
        pass


def _offsets(records: Any) -> list[int]:
    offsets = []
    for record in records:
        assert isinstance(record.position, KafkaPosition)
        offsets.append(record.position.offset)
    return offsets


@pytest.mark.parametrize("code", GONE)
async def test_a_replay_whose_topic_is_deleted_fails_after_what_it_read(code: int) -> None:
    consumer_type = type("Deleted", (DeletedAfterFive,), {"code": code})
    source = KafkaReplaySource(
        [OffsetRange("t", 0, 0, 100)], CLIENT, consumer_factory=consumer_type, poll_timeout_s=0.0
    )
    got: list[int] = []

    async def read() -> None:
        async with source:
            async for batch in source.batches():
                got.extend(_offsets(batch.records))

    with pytest.raises(ResourceNotFoundError) as raised:
        await asyncio.wait_for(read(), BOUND)
    assert got == [0, 1, 2, 3, 4]  # what the fetch read before the error is handed out
    assert "'t' is gone" in str(raised.value)


@pytest.mark.parametrize("until_tip", [True, False])
async def test_a_tail_whose_topic_is_deleted_fails_after_what_it_read(
    until_tip: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(confluent_kafka, "Consumer", DeletedAfterFive)
    follower = KafkaFollower(CLIENT, "t", KafkaStart("earliest"), until_tip=until_tip, poll_timeout_s=0.0)
    got: list[int] = []

    async def read() -> None:
        async for batch in follower.batches():
            got.extend(_offsets(batch.records))

    with pytest.raises(ResourceNotFoundError) as raised:
        await asyncio.wait_for(read(), BOUND)
    assert got == [0, 1, 2, 3, 4]
    assert "'t' is gone" in str(raised.value)


async def test_other_non_fatal_errors_are_passed_over() -> None:
    consumer_type = type("Slow", (DeletedAfterFive,), {"code": KafkaError._TRANSPORT})
    source = KafkaReplaySource(
        [OffsetRange("t", 0, 0, 5)], CLIENT, consumer_factory=consumer_type, poll_timeout_s=0.0
    )
    got: list[int] = []
    async with source:
        async for batch in source.batches():
            got.extend(_offsets(batch.records))
    assert got == [0, 1, 2, 3, 4]
