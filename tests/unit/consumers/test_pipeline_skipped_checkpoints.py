"""A checkpoint the source lets go is not counted as written.

After a revoke a Kafka source skips the offset store of a partition it no longer owns (its
new owner resumes from the last commit).  The pipeline counted that as a checkpoint written,
so the ``consume`` progress line's ``last_checkpoint_s_ago`` looked fresh while every commit
was refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from confluent_kafka import TopicPartition

from consumers.kafka import KafkaConsumerConfig, KafkaSource
from consumers.pipeline import Pipeline, PipelineConfig
from consumers.progress import ConsumeProgress
from consumers.source import SourceBatch
from shardline.kafka_config import KafkaClientConfig
from shardline.records import ConsumedRecord, KafkaPosition, Position
from shardline.retry import RetryPolicy
from tests.unit.consumers.pipeline_doubles import EventLog, RecordingSink, ScriptedSource

NO_WAIT = RetryPolicy(max_attempts=None, deadline=None, initial_backoff=0.0, max_backoff=0.0)
FAST = PipelineConfig(checkpoint_interval=3600, sink_retry=NO_WAIT)


class _OffsetConsumer:
    """Enough of confluent_kafka.Consumer for offset stores driven by the test."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.stored: list[tuple[str, int, int]] = []

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        self.stored.extend((tp.topic, tp.partition, tp.offset) for tp in offsets)

    def commit(self, asynchronous: bool = False) -> None:
        return None

    def close(self) -> None:
        return None


def _kafka_source(observer: Any = None) -> KafkaSource:
    return KafkaSource(
        ["telemetry"],
        KafkaClientConfig(bootstrap_servers="127.0.0.1:9"),
        KafkaConsumerConfig(group_id="g"),
        observer=observer,
        consumer_factory=_OffsetConsumer,
    )


async def test_the_kafka_source_says_whether_it_stored_the_offset() -> None:
    source = _kafka_source()
    source._on_assign(None, [TopicPartition("telemetry", 0)])
    assert await source.checkpoint("telemetry/0", KafkaPosition("telemetry", 0, 41)) is True
    source._on_revoke(None, [TopicPartition("telemetry", 0)])
    assert await source.checkpoint("telemetry/0", KafkaPosition("telemetry", 0, 99)) is False
    assert source._consumer.stored == [("telemetry", 0, 42)]


class _RevokedKafkaPartition(ScriptedSource):
    """Yields one batch of ``telemetry/0``; its checkpoints go to a Kafka source that the
    group revoked the partition from while the batch was written."""

    def __init__(self, kafka: KafkaSource) -> None:
        records = [ConsumedRecord(b"x", "k", KafkaPosition("telemetry", 0, offset)) for offset in range(3)]
        super().__init__([SourceBatch("telemetry/0", records, topic="telemetry")])
        self._kafka = kafka

    async def checkpoint(self, partition: str, position: Position) -> bool:
        return await self._kafka.checkpoint(partition, position)


async def test_a_skipped_checkpoint_is_not_counted_and_the_progress_line_does_not_look_fresh(
    caplog: Any,
) -> None:
    caplog.set_level(logging.INFO, logger="t.skipped.progress")
    log = EventLog()
    progress = ConsumeProgress(log, logger=logging.getLogger("t.skipped.progress"))
    kafka = _kafka_source(progress)
    kafka._on_assign(None, [TopicPartition("telemetry", 0)])
    kafka._on_revoke(None, [TopicPartition("telemetry", 0)])
    pipeline = Pipeline(_RevokedKafkaPartition(kafka), RecordingSink(), config=FAST, observer=progress)

    await pipeline.run()

    assert pipeline.stats.records_out == 3
    assert pipeline.stats.checkpoints == 0
    assert log.total("checkpoints_written") == 0
    assert log.total("kafka_checkpoint_after_revoke") >= 1
    progress.log()
    assert "last_checkpoint_s_ago" not in vars(caplog.records[-1])


class _AssignedBack(ScriptedSource):
    """``telemetry/0`` read, revoked before its checkpoint, then assigned back to this member:
    librdkafka reads it again from the group's last commit (none here), so the second batch
    holds the same offsets as the first."""

    def __init__(self, kafka: KafkaSource) -> None:
        super().__init__([])
        self._kafka = kafka
        self.refused = asyncio.Event()

    def _batch(self) -> SourceBatch:
        records = [ConsumedRecord(b"x", "k", KafkaPosition("telemetry", 0, offset)) for offset in range(3)]
        return SourceBatch("telemetry/0", records, topic="telemetry")

    async def batches(self) -> AsyncIterator[SourceBatch]:
        yield self._batch()
        await asyncio.wait_for(self.refused.wait(), 5.0)  # its checkpoint was let go
        self._kafka._on_assign(None, [TopicPartition("telemetry", 0)])
        yield self._batch()

    async def checkpoint(self, partition: str, position: Position) -> bool:
        stored = await self._kafka.checkpoint(partition, position)
        if not stored:
            self.refused.set()
        return stored


async def test_a_position_let_go_is_stored_once_the_partition_is_assigned_back() -> None:
    # the position let go was remembered as checkpointed: read again up to the same offset
    # under the new assignment, it was never stored, so nothing was ever committed for the
    # partition (a member past max.poll.interval.ms rejoins exactly so) and every restart
    # read it all again
    kafka = _kafka_source()
    kafka._on_assign(None, [TopicPartition("telemetry", 0)])
    kafka._on_revoke(None, [TopicPartition("telemetry", 0)])
    source = _AssignedBack(kafka)
    config = PipelineConfig(checkpoint_interval=0.01, sink_retry=NO_WAIT)
    pipeline = Pipeline(source, RecordingSink(), config=config)

    stats = await asyncio.wait_for(pipeline.run(), 5.0)

    assert stats.records_out == 6
    assert kafka._consumer.stored == [("telemetry", 0, 3)]
    assert stats.checkpoints == 1


async def test_a_position_let_go_is_counted_once_however_often_it_is_asked_for() -> None:
    log = EventLog()
    kafka = _kafka_source(log)
    kafka._on_assign(None, [TopicPartition("telemetry", 0)])
    kafka._on_revoke(None, [TopicPartition("telemetry", 0)])
    for offset in (5, 5, 5, 9):
        assert await kafka.checkpoint("telemetry/0", KafkaPosition("telemetry", 0, offset)) is False
    assert log.total("kafka_checkpoint_after_revoke") == 2
