"""KafkaReplaySource ends a range when no message is left below its end, not only at its last
offset (an in-memory stand-in for confluent_kafka.Consumer; every wait is bounded)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, TopicPartition

from consumers.kafka import KafkaReplaySource, OffsetRange
from shardline.kafka_config import KafkaClientConfig

BOUND = 5.0
CLIENT = KafkaClientConfig(bootstrap_servers="127.0.0.1:9")


class LogConsumer:
    """Serves one partition's log once, then only an end-of-partition event (if ``eof`` says
    where the partition ends), as librdkafka does with ``enable.partition.eof``."""

    def __init__(self, conf: dict[str, Any], offsets: list[int], eof: int | None) -> None:
        self.conf = conf
        self.log = [Message(topic="t", partition=0, offset=o, value=str(o).encode()) for o in offsets]
        self.eof = eof
        self.calls = 0

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float, cached: bool
    ) -> tuple[int, int]:
        return 0, 0  # the log starts at offset 0: nothing removed

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        self.calls += 1
        if self.calls == 1:
            return self.log
        if self.eof is not None:
            end = Message(
                topic="t", partition=0, offset=self.eof, error=KafkaError(KafkaError._PARTITION_EOF)
            )
            return [end]
        return []

    def pause(self, partitions: list[TopicPartition]) -> None:
        pass

    def close(self) -> None:
        pass


async def _replay(offsets: list[int], eof: int | None, end: int) -> list[int]:
    consumers: list[LogConsumer] = []

    def factory(conf: dict[str, Any]) -> LogConsumer:
        consumers.append(LogConsumer(conf, offsets, eof))
        return consumers[-1]

    got: list[int] = []
    source = KafkaReplaySource(
        [OffsetRange("t", 0, 0, end)], CLIENT, consumer_factory=factory, poll_timeout_s=0.0
    )
    async with source:
        async for batch in source.batches():
            got.extend(int(record.data) for record in batch.records)
    assert consumers[0].conf["enable.partition.eof"] is True
    return got


@pytest.mark.parametrize(
    ("offsets", "eof"),
    [
        ([0, 1, 2, 3, 4, 5, 6, 7, 12], None),  # compaction removed 8-11: a later record shows it
        ([0, 1, 2, 3, 4, 5, 6, 7], 10),  # 8 and 9 hold a transaction's records and marker
        ([0, 1, 2, 3, 4, 5, 6, 7], 12),
    ],
    ids=["a-later-record", "end-of-partition-at-the-end", "end-of-partition-past-it"],
)
async def test_a_range_whose_last_offsets_hold_no_message_ends(offsets: list[int], eof: int | None) -> None:
    assert await asyncio.wait_for(_replay(offsets, eof, end=10), BOUND) == list(range(8))


async def test_a_range_not_yet_written_to_its_end_keeps_waiting() -> None:
    """An end-of-partition before the range's end: the rest may still be written."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(_replay([0, 1, 2], 3, end=10), 0.5)


class CountingLogConsumer(LogConsumer):
    """A LogConsumer that says when it has served ``enough`` calls."""

    enough = 5

    def __init__(self, conf: dict[str, Any], offsets: list[int], eof: int | None) -> None:
        super().__init__(conf, offsets, eof)
        self.served = threading.Event()

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        handed = super().consume(num_messages, timeout)
        if self.calls >= self.enough:
            self.served.set()
        return handed


async def test_a_range_waiting_past_the_partition_end_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    """The wait looked like a hang when nothing said what it waits for."""
    consumer = CountingLogConsumer({}, [0, 1, 2], 3)
    source = KafkaReplaySource(
        [OffsetRange("t", 0, 0, 10)], CLIENT, consumer_factory=lambda conf: consumer, poll_timeout_s=0.0
    )
    got: list[int] = []

    async def read() -> None:
        async for batch in source.batches():
            got.extend(int(record.data) for record in batch.records)

    caplog.set_level(logging.WARNING, logger="consumers._kafka_replay")
    reading = asyncio.ensure_future(read())
    try:
        # several end-of-partition events after the records: still one warning
        assert await asyncio.wait_for(asyncio.to_thread(consumer.served.wait, BOUND), BOUND)
        assert not reading.done()  # still waiting for offsets 3 to 9
    finally:
        await source.stop()
        await asyncio.wait_for(reading, BOUND)
        await source.close()
    assert got == [0, 1, 2]
    waiting = [r.getMessage() for r in caplog.records if "waiting for the rest" in r.getMessage()]
    assert waiting == [
        "t/0 holds offsets up to 2, but the range ends at 10: waiting for the rest to be written "
        "(stop the job to end it; a rerun resumes)"
    ]
