"""The `consume` progress line for a Kafka source: the partitions the group assigned, their lag.

A Kafka batch carries no ``millis_behind_latest``, so a line that counted lag reports showed
``partitions=0`` (and ``caught_up=0``) while records flowed from every partition.  The source
measures each owned partition's lag in messages instead (``kafka_lag_messages``): the line
shows the largest, and how many partitions are caught up.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import OFFSET_INVALID, Message, TopicPartition

from consumers.kafka import KafkaConsumerConfig, KafkaSource
from consumers.progress import ConsumeProgress
from shardline.kafka_config import KafkaClientConfig


class _IdleConsumer:
    """Enough of confluent_kafka.Consumer for a source whose rebalance callbacks are driven here."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf

    def commit(self, asynchronous: bool = False) -> None:
        return None

    def close(self) -> None:
        return None


def _partitions(*ids: int) -> list[TopicPartition]:
    return [TopicPartition("telemetry", i) for i in ids]


def _last_line(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    line = caplog.records[-1]
    assert line.message == "progress"
    return vars(line)


def test_kafka_progress_counts_assigned_partitions_across_rebalances(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="t.kafka.progress")
    progress = ConsumeProgress(logger=logging.getLogger("t.kafka.progress"))
    source = KafkaSource(
        ["telemetry"],
        KafkaClientConfig(bootstrap_servers="127.0.0.1:9"),
        KafkaConsumerConfig(group_id="g"),
        observer=progress,
        consumer_factory=_IdleConsumer,
    )
    source._on_assign(None, _partitions(0, 1, 2, 3))
    for partition in ("telemetry/0", "telemetry/3"):
        progress.on_event("records_in", 10, topic="telemetry", partition=partition)
    progress.log()
    seen = _last_line(caplog)
    assert (seen["partitions"], seen["records_in"]) == (4, 20)
    assert "caught_up" not in seen and "max_lag_ms" not in seen  # no lag measured yet

    source._on_revoke(None, _partitions(2, 3))  # a cooperative rebalance moves two away
    progress.log()
    assert _last_line(caplog)["partitions"] == 2

    source._on_revoke(None, _partitions(0, 1))  # an eager one revokes all, then assigns anew
    source._on_assign(None, _partitions(0, 1, 2))
    progress.log()
    assert _last_line(caplog)["partitions"] == 3


def test_kinesis_progress_still_counts_shards_that_reported_lag(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="t.kinesis.progress")
    progress = ConsumeProgress(logger=logging.getLogger("t.kinesis.progress"))
    progress.on_event("iterator_age_ms", 0, stream="s", partition="shardId-0")
    progress.on_event("iterator_age_ms", 900, stream="s", partition="shardId-1")
    progress.log()
    seen = _last_line(caplog)
    assert (seen["partitions"], seen["caught_up"], seen["max_lag_ms"]) == (2, 1, 900)


BOUND = 5.0

Step = Callable[["ScriptedConsumer"], list[Message]]


class ScriptedConsumer:
    """Serves one scripted step per ``consume()`` call: the step may run rebalance callbacks,
    moves positions and cached watermarks, and returns its messages.  Once the script is
    done a call waits its timeout and returns nothing, as an idle client does."""

    def __init__(self, conf: dict[str, Any], steps: list[Step]) -> None:
        self.steps = list(steps)
        self.positions: dict[int, int] = {}
        self.watermarks: dict[int, tuple[int, int]] = {}
        self.on_assign: Any = None
        self.on_revoke: Any = None
        self.idle = threading.Event()

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any) -> None:
        self.on_assign, self.on_revoke = on_assign, on_revoke

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        if self.steps:
            return self.steps.pop(0)(self)
        self.idle.wait(timeout)  # never set: the client's own wait for messages
        return []

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.positions.get(tp.partition, OFFSET_INVALID))
            for tp in partitions
        ]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float | None = None, cached: bool = False
    ) -> tuple[int, int]:
        assert cached, "the lag is measured without a broker request"
        return self.watermarks.get(partition.partition, (OFFSET_INVALID, OFFSET_INVALID))

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        return None

    def commit(self, asynchronous: bool = False) -> None:
        return None

    def close(self) -> None:
        return None


def _messages(partition: int, *offsets: int) -> list[Message]:
    return [Message(topic="telemetry", partition=partition, offset=o, value=b"v", key=b"k") for o in offsets]


def _first_read(consumer: ScriptedConsumer) -> list[Message]:
    consumer.on_assign(consumer, _partitions(0, 1))
    consumer.positions = {0: 2, 1: 1}
    consumer.watermarks = {0: (0, 10), 1: (0, 1)}  # partition 0 is 8 behind, 1 at its end
    return [*_messages(0, 0, 1), *_messages(1, 0)]


def _partition_0_catches_up(consumer: ScriptedConsumer) -> list[Message]:
    consumer.positions[0] = 10
    consumer.watermarks[1] = (0, 501)  # 500 written to partition 1 meanwhile
    return _messages(0, *range(2, 10))


def _partition_1_moves_away(consumer: ScriptedConsumer) -> list[Message]:
    consumer.on_revoke(consumer, _partitions(1))  # a cooperative rebalance
    consumer.positions[0] = 11
    consumer.watermarks[0] = (0, 11)
    return _messages(0, 10)


class ThreadRecorder:
    def __init__(self) -> None:
        self.lag_threads: set[int] = set()

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        if name == "kafka_lag_messages":
            self.lag_threads.add(threading.get_ident())


async def test_kafka_progress_shows_the_largest_lag_in_messages_and_partitions_caught_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="t.kafka.lag")
    recorder = ThreadRecorder()
    progress = ConsumeProgress(recorder, logger=logging.getLogger("t.kafka.lag"))
    steps: list[Step] = [_first_read, _partition_0_catches_up, _partition_1_moves_away]
    source = KafkaSource(
        ["telemetry"],
        KafkaClientConfig(bootstrap_servers="127.0.0.1:9"),
        KafkaConsumerConfig(group_id="g", poll_timeout_s=0.01, lag_interval_s=0),  # every call
        observer=progress,
        consumer_factory=lambda conf: ScriptedConsumer(conf, steps),
    )
    lines: list[dict[str, Any]] = []
    async with source:
        batches = source.batches()
        for batches_of_step in (2, 1, 1):  # one batch per partition a step read from
            for _ in range(batches_of_step):
                await asyncio.wait_for(anext(batches), BOUND)
            progress.log()
            lines.append(_last_line(caplog))
        await batches.aclose()

    shown = [(line["partitions"], line["max_lag_messages"], line["caught_up"]) for line in lines]
    assert shown == [
        (2, 8, 1),  # partition 1 read to its end
        (2, 500, 2),  # 500 behind is still "caught up" (not the 10,000 that re-arms it)
        (1, 0, 1),  # partition 1 moved away: its 500 no longer counts, nor does it as caught up
    ]
    assert all("max_lag_ms" not in line for line in lines)
    caught_up = [vars(r)["partition"] for r in caplog.records if r.message == "caught up"]
    assert caught_up == ["telemetry/1", "telemetry/0"]
    assert recorder.lag_threads == {threading.get_ident()}  # the event loop's thread


def test_a_kafka_partition_is_caught_up_again_only_after_falling_far_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="t.kafka.rearm")
    progress = ConsumeProgress(logger=logging.getLogger("t.kafka.rearm"))
    for lag in (120, 0, 9_999, 0, 10_000, 3, 0):
        progress.on_event("kafka_lag_messages", lag, topic="t", partition="t/0")
    caught_up = [r for r in caplog.records if r.message == "caught up"]
    assert len(caught_up) == 2  # at the first 0, and at the 0 after 10,000 behind


def test_a_revocation_empties_the_lag_until_the_owned_partitions_report_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="t.kafka.revoke")
    progress = ConsumeProgress(logger=logging.getLogger("t.kafka.revoke"))
    progress.on_event("kafka_partitions_assigned", 2)
    progress.on_event("kafka_lag_messages", 0, topic="t", partition="t/0")
    progress.on_event("kafka_lag_messages", 7_000, topic="t", partition="t/1")
    progress.on_event("kafka_partitions_revoked", 1)
    progress.log()
    line = _last_line(caplog)
    assert line["partitions"] == 1
    assert "max_lag_messages" not in line and "caught_up" not in line
    progress.on_event("kafka_lag_messages", 0, topic="t", partition="t/0")
    progress.log()
    line = _last_line(caplog)
    assert (line["max_lag_messages"], line["caught_up"]) == (0, 1)
