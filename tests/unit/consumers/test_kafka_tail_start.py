"""``tail --start offset:N`` says so when offset N is gone, instead of starting at the end.

Kafka answers a fetch below a partition's earliest offset (records removed by retention) with
OFFSET_OUT_OF_RANGE, and librdkafka resets to its default, the partition's end: the tail showed
only records written afterwards.  The stand-in for confluent_kafka.Consumer plays a partition
whose first ``removed`` offsets are gone and resets a fetch below them to its end, as librdkafka
does; every wait is bounded.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import KafkaError, Message, TopicPartition

from consumers.tail.kafka import KafkaFollower, KafkaStart
from shardline.errors import ConfigurationError
from shardline.kafka_config import KafkaClientConfig
from shardline.records import KafkaPosition

BOUND = 5.0
CLIENT = KafkaClientConfig(bootstrap_servers="127.0.0.1:9", consumer_close_timeout_s=BOUND)
WRITTEN = 50


class Retained:
    """t/0 holding offsets ``removed`` to ``WRITTEN - 1``."""

    removed = 10

    def __init__(self, conf: dict[str, Any]) -> None:
        self.position = 0

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return SimpleNamespace(topics={"t": SimpleNamespace(partitions={0: None})})

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float, cached: bool
    ) -> tuple[int, int]:
        return self.removed, WRITTEN

    def assign(self, partitions: list[TopicPartition]) -> None:
        (start,) = partitions
        self.position = start.offset if start.offset >= self.removed else WRITTEN  # reset: the end

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        if self.position >= WRITTEN:
            return [
                Message(topic="t", partition=0, offset=WRITTEN, error=KafkaError(KafkaError._PARTITION_EOF))
            ]
        handed = [
            Message(topic="t", partition=0, offset=o, value=b"v") for o in range(self.position, WRITTEN)
        ]
        self.position = WRITTEN
        return handed

    def close(self) -> None:
        pass


async def _tail(offset: int) -> list[int]:
    follower = KafkaFollower(CLIENT, "t", KafkaStart("offset", offset=offset), partitions=[0], until_tip=True)
    got: list[int] = []

    async def read() -> None:
        async for batch in follower.batches():
            for record in batch.records:
                assert isinstance(record.position, KafkaPosition)
                got.append(record.position.offset)

    await asyncio.wait_for(read(), BOUND)
    return got


async def test_an_offset_retention_removed_is_refused_naming_the_earliest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(confluent_kafka, "Consumer", Retained)
    with pytest.raises(ConfigurationError) as raised:
        await _tail(3)
    assert "offset 3 of t/0 no longer exists" in str(raised.value)
    assert "--start offset:10" in str(raised.value)


async def test_an_offset_still_held_is_read_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(confluent_kafka, "Consumer", Retained)
    assert await _tail(45) == list(range(45, WRITTEN))
