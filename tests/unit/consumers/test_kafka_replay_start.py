"""KafkaReplaySource hands out nothing below a range's start.

A range starting past the partition's end (offsets given beyond what was written, or a log
truncated by an unclean leader election) is fetched from an offset the broker answers with
OFFSET_OUT_OF_RANGE; librdkafka then resets to the earliest offset (the replay's
``auto.offset.reset``) and delivers the partition from there.  Those records were replayed as
the range's (an in-memory stand-in for confluent_kafka.Consumer; every wait is bounded).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, TopicPartition

from consumers.kafka import KafkaReplaySource, OffsetRange
from shardline.errors import ResourceNotFoundError
from shardline.kafka_config import KafkaClientConfig

BOUND = 5.0
CLIENT = KafkaClientConfig(bootstrap_servers="127.0.0.1:9")


class ResetToEarliest:
    """A partition holding ``written`` messages from offset 0: a fetch from past its end is
    reset to offset 0, as librdkafka does with ``auto.offset.reset=earliest``."""

    def __init__(self, written: int) -> None:
        self.written = written
        self.served = False

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float, cached: bool
    ) -> tuple[int, int]:
        return 0, 0  # the log starts at offset 0: nothing removed

    def assign(self, partitions: list[TopicPartition]) -> None:
        assert [tp.offset for tp in partitions] == [20]

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        if self.served:
            end = KafkaError(KafkaError._PARTITION_EOF)
            return [Message(topic="t", partition=0, offset=self.written, error=end)]
        self.served = True
        return [Message(topic="t", partition=0, offset=o, value=str(o).encode()) for o in range(self.written)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        pass

    def close(self) -> None:
        pass


async def _replay(written: int, got: list[int]) -> None:
    def factory(conf: dict[str, Any]) -> ResetToEarliest:
        assert conf["auto.offset.reset"] == "earliest"
        return ResetToEarliest(written)

    source = KafkaReplaySource(
        [OffsetRange("t", 0, 20, 30)], CLIENT, consumer_factory=factory, poll_timeout_s=0.0
    )
    async with source:
        async for batch in source.batches():
            got.extend(int(record.data) for record in batch.records)


async def test_records_below_the_start_read_after_a_reset_are_not_the_ranges() -> None:
    got: list[int] = []
    await asyncio.wait_for(_replay(35, got), BOUND)
    assert got == list(range(20, 30))


async def test_a_range_past_the_end_hands_out_nothing_and_waits_for_its_records() -> None:
    got: list[int] = []
    try:
        await asyncio.wait_for(_replay(10, got), 0.5)
    except TimeoutError:
        pass
    else:
        raise AssertionError("a range not written yet ended")
    assert got == []


class Retained:
    """A partition whose first ``removed`` offsets retention deleted: the earliest offset is
    ``removed``, and a fetch below it resets there (``auto.offset.reset=earliest``)."""

    def __init__(self, removed: int, written: int) -> None:
        self.removed = removed
        self.written = written
        self.served = False

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float, cached: bool
    ) -> tuple[int, int]:
        assert not cached  # the broker's answer now, not one from before retention ran
        return self.removed, self.written

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        if self.served:
            end = KafkaError(KafkaError._PARTITION_EOF)
            return [Message(topic="t", partition=0, offset=self.written, error=end)]
        self.served = True
        return [
            Message(topic="t", partition=0, offset=o, value=str(o).encode())
            for o in range(self.removed, self.written)
        ]

    def pause(self, partitions: list[TopicPartition]) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("removed", "missing"), [(5, "offsets 0 to 4"), (40, "offsets 0 to 29")])
async def test_a_range_whose_start_retention_removed_fails_instead_of_starting_later(
    removed: int, missing: str
) -> None:
    got: list[int] = []
    source = KafkaReplaySource(
        [OffsetRange("t", 0, 0, 30)],
        CLIENT,
        consumer_factory=lambda conf: Retained(removed, 50),
        poll_timeout_s=0.0,
    )
    with pytest.raises(ResourceNotFoundError) as raised:
        async with source:
            async for batch in source.batches():
                got.extend(int(record.data) for record in batch.records)
    assert got == []  # nothing from the later offsets handed out as the range's
    assert missing in str(raised.value)
    assert f"starts at offset {removed}" in str(raised.value)
    assert raised.value.code == "OFFSET_OUT_OF_RANGE"


async def test_a_range_starting_at_the_log_start_is_read_whole() -> None:
    got: list[int] = []
    source = KafkaReplaySource(
        [OffsetRange("t", 0, 5, 30)],
        CLIENT,
        consumer_factory=lambda conf: Retained(5, 50),
        poll_timeout_s=0.0,
    )
    async with source:
        async for batch in source.batches():
            got.extend(int(record.data) for record in batch.records)
    assert got == list(range(5, 30))
