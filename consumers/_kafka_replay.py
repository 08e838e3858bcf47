"""Bounded Kafka reads: replay an offset range (or a time range) and stop at its end.

Replay and backfill jobs read exactly the messages ``[start, end)`` of each partition, not
"until caught up", so the same job run twice hands the sink the same records.  Partitions
are assigned directly (no group rebalancing); a ``checkpoint_group`` gives the job its own
offset namespace in the cluster so an interrupted job resumes where it stopped without
touching the live consumers' group.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from confluent_kafka import Consumer, KafkaError, TopicPartition

from consumers._kafka_commits import CommitOutcomes
from consumers._kafka_messages import partition_name, to_batches
from consumers._kafka_thread import ConsumerThread
from consumers._kafka_token import token_failure_reporter
from consumers.source import SourceBatch
from shardline import metrics_events as events
from shardline.errormap import from_kafka_error, map_kafka_errors
from shardline.errors import (
    CheckpointError,
    ClosedError,
    ResourceNotFoundError,
    ShardlineError,
    ValidationError,
)
from shardline.eventid import EventIdKey
from shardline.kafka_config import KafkaClientConfig
from shardline.lograte import RepeatedWarning
from shardline.metrics import MetricsObserver, guard_observer
from shardline.records import KafkaPosition, Position
from shardline.validation import validate_topic_name

log = logging.getLogger(__name__)

__all__ = ["KafkaReplaySource", "OffsetRange", "ranges_for_times", "topic_gone"]

_OFFSET_END = -1  # offsets_for_times: no message at or after the timestamp


@dataclass(frozen=True, slots=True)
class OffsetRange:
    """Offsets ``start`` (inclusive) to ``end`` (exclusive) of one partition."""

    topic: str
    partition: int
    start: int
    end: int

    def __post_init__(self) -> None:
        validate_topic_name(self.topic)
        if self.partition < 0 or self.start < 0 or self.end < self.start:
            raise ValidationError(
                f"bad offset range {self.topic}/{self.partition} [{self.start}, {self.end})"
            )

    @property
    def name(self) -> str:
        return partition_name(self.topic, self.partition)


def ranges_for_times(
    consumer: Any,
    topic: str,
    start: datetime,
    end: datetime,
    *,
    partitions: Sequence[int] | None = None,
    timeout_s: float = 10.0,
) -> list[OffsetRange]:
    """Offset ranges covering messages with ``start <= timestamp < end`` (``offsets_for_times``).

    ``consumer`` is a confluent-kafka Consumer (blocking call: run it off the event loop).
    When no message is at or after ``end`` the range ends at the high watermark, which MSK
    reports correctly (the local test broker does not; pass explicit offsets there).
    """
    if start.tzinfo is None or end.tzinfo is None:
        # .timestamp() reads a naive time in the machine's zone: the range silently moved by
        # the UTC offset wherever that is not UTC
        raise ValidationError("range times must be timezone-aware")
    if end < start:
        raise ValidationError("end must not be before start")
    # Behind the error boundary: with the brokers out of reach each call below raises a
    # KafkaException (_TRANSPORT, _TIMED_OUT), which reached the replay job untyped.
    with map_kafka_errors():
        return _ranges_for_times(consumer, topic, start, end, partitions, timeout_s)


def _ranges_for_times(
    consumer: Any,
    topic: str,
    start: datetime,
    end: datetime,
    partitions: Sequence[int] | None,
    timeout_s: float,
) -> list[OffsetRange]:
    if partitions is None:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        found = metadata.topics.get(topic)
        if found is None or not found.partitions:
            # An unknown topic comes back with an error and no partitions: no range at all
            # was then refused later as "give at least one offset range".
            raise ResourceNotFoundError(f"Kafka topic {topic!r} does not exist", service="kafka")
        partitions = sorted(found.partitions)
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    starts = consumer.offsets_for_times([TopicPartition(topic, p, start_ms) for p in partitions], timeout_s)
    ends = consumer.offsets_for_times([TopicPartition(topic, p, end_ms) for p in partitions], timeout_s)
    ranges: list[OffsetRange] = []
    for first, last in zip(starts, ends, strict=True):
        for answer in (first, last):
            if answer.error is not None:
                # A partition's own failure (its leader unavailable, the topic gone) comes back
                # as its error and offset -1001, refused as "bad offset range" (exit 2, as if
                # the arguments were wrong): the broker's answer, as its Shardline error.
                raise from_kafka_error(answer.error)
        high: int | None = None
        if first.offset == _OFFSET_END or last.offset == _OFFSET_END:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, first.partition), timeout_s)
        begin = high if first.offset == _OFFSET_END else first.offset
        stop = high if last.offset == _OFFSET_END else last.offset
        assert begin is not None and stop is not None
        ranges.append(OffsetRange(topic, first.partition, begin, max(begin, stop)))
    return ranges


def topic_gone(topic: str, err: KafkaError) -> ResourceNotFoundError:
    """The error that ends a replay (or a ``tail``) whose topic or partition is gone.

    librdkafka reports a partition it was assigned that the cluster no longer has
    (``UNKNOWN_TOPIC_OR_PART``, ``_UNKNOWN_TOPIC``, ``_UNKNOWN_PARTITION``: the topic was
    deleted) as a non-fatal error, after ``topic.metadata.propagation.max.ms``, and fetches
    nothing more: counted and passed over, it left the reader waiting forever for offsets no
    broker will ever serve.
    """
    return ResourceNotFoundError(
        f"Kafka topic {topic!r} is gone ({err.name()}): it was deleted while being read, so what "
        "was left of it cannot be read",
        code=err.name(),
        service="kafka",
    )


class KafkaReplaySource:
    """A :class:`consumers.source.Source` over fixed offset ranges that ends when all are read.

    Without ``checkpoint_group`` checkpoints are kept in memory only (:attr:`checkpoints`);
    with it they are committed to that group, and a re-run resumes after them.
    """

    def __init__(
        self,
        ranges: Iterable[OffsetRange],
        client: KafkaClientConfig,
        *,
        checkpoint_group: str | None = None,
        batch_max_messages: int = 1_000,
        poll_timeout_s: float = 0.5,
        with_timestamps: bool = True,
        event_id_key: EventIdKey | None = None,
        observer: MetricsObserver | None = None,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> None:
        self.ranges = {r.name: r for r in ranges}
        if not self.ranges:
            raise ValidationError("give at least one offset range")
        self._topics = {r.topic for r in self.ranges.values()}
        self.checkpoint_group = checkpoint_group
        self.checkpoints: dict[str, int] = {}
        self._batch_max = batch_max_messages
        self._poll_timeout = poll_timeout_s
        self._with_timestamps = with_timestamps
        self._event_id_key = event_id_key
        self._observer: MetricsObserver = guard_observer(observer)
        self._commits = CommitOutcomes(
            self._observer,
            log,
            lost=f"nothing this replay read is committed to {checkpoint_group!r}, "
            "so a rerun would read it again",
        )
        """How the commits to ``checkpoint_group`` went; a commit refused for good is raised by
        the next :meth:`checkpoint`, as :class:`consumers.kafka.KafkaSource` does."""
        conf = {
            **client.to_confluent(),
            "group.id": checkpoint_group or f"shardline-replay-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.queue.backoff.ms": 10,
            "isolation.level": "read_committed",
            # The end of what can be read is reported (at the high watermark, or the last
            # stable offset under read_committed): see batches() for why a range needs it.
            "enable.partition.eof": True,
            # Without it a commit to checkpoint_group refused for good (no right to commit)
            # was heard of only in librdkafka's log: the replay went on and every checkpoint
            # counted as kept, and a rerun read it all again.
            "on_commit": self._commits.on_commit,
        }
        self._consumer = client.new_client(
            consumer_factory,
            conf,
            on_token_failure=token_failure_reporter(self._observer, RepeatedWarning(log)),
        )
        self._executor = ConsumerThread("shardline-kafka-replay")
        self._close_timeout_s = client.consumer_close_timeout_s
        self._stopping = False
        self._closed = False

    def __repr__(self) -> str:
        return f"KafkaReplaySource(partitions={sorted(self.ranges)!r}, group={self.checkpoint_group!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def batches(self) -> AsyncIterator[SourceBatch]:
        """Yield the ranges' messages in order per partition; end when every range is read.

        A range is read when its last offset was delivered, or when the partition showed that
        no message is left below the range's end: a later message, or the end of what it holds
        (``enable.partition.eof``).  The last offsets of a range can hold no message at all: a
        transaction's commit or abort marker (the last offset before the high watermark of a
        partition whose last write was a transaction), an aborted transaction's records
        (skipped under ``read_committed``), records removed by compaction.  Waiting for the
        last offset itself hung such a replay forever.
        """
        if self._closed:
            raise ClosedError("source is closed")
        loop = asyncio.get_running_loop()
        remaining, starts = await loop.run_in_executor(self._executor, self._assign)
        paused: set[str] = set()
        waiting: set[str] = set()
        """Partitions read to their end below their range's end (warned about once)."""
        while remaining and not self._stopping:
            messages = await loop.run_in_executor(self._executor, self._consume)
            wanted = []
            gone: tuple[ResourceNotFoundError, ShardlineError] | None = None
            for msg in messages:
                err = msg.error()
                name = partition_name(msg.topic(), msg.partition())
                bound = self.ranges.get(name)
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        mapped = from_kafka_error(err)
                        if err.fatal():
                            raise mapped
                        if isinstance(mapped, ResourceNotFoundError) and msg.topic() in self._topics:
                            gone = gone or (topic_gone(msg.topic(), err), mapped)
                            continue
                        self._observer.on_event(events.KAFKA_CONSUMER_ERROR, error=err.name())
                    elif bound is not None and msg.offset() >= bound.end:
                        # Read to the end of what the partition holds, which is past the range:
                        # the offsets left below its end hold no message to deliver.
                        remaining.discard(name)
                    elif bound is not None and name in remaining and name not in waiting:
                        waiting.add(name)
                        self._warn_waiting(bound, msg.offset())
                    continue
                if bound is None or name not in remaining:
                    continue
                offset = msg.offset()
                if offset < starts[name]:
                    # Kafka answers a fetch past the partition's end with OFFSET_OUT_OF_RANGE and
                    # librdkafka then starts at the earliest offset: what it reads below the
                    # range's start is not the range's (a range not written yet waits instead).
                    continue
                if offset >= bound.end:
                    remaining.discard(name)  # past the end: nothing below it is left to read
                    continue
                wanted.append(msg)
                if offset >= bound.end - 1:
                    remaining.discard(name)
            for batch in to_batches(
                wanted, with_timestamp=self._with_timestamps, event_id_key=self._event_id_key
            ):
                yield batch
            if gone is not None:  # after what the same fetch read before it
                raise gone[0] from gone[1]
            finished = [r for name, r in self.ranges.items() if name not in remaining and name not in paused]
            if finished:
                paused.update(r.name for r in finished)
                await loop.run_in_executor(self._executor, self._pause, finished)

    async def checkpoint(self, partition: str, position: Position) -> bool:
        if not isinstance(position, KafkaPosition):
            raise CheckpointError(f"a Kafka source cannot checkpoint a {type(position).__name__}")
        if self.checkpoint_group is not None:
            self._commits.raise_if_refused()
        self.checkpoints[partition] = position.offset + 1
        if self.checkpoint_group is not None:
            next_offset = TopicPartition(position.topic, position.partition_id, position.offset + 1)
            with map_kafka_errors():
                self._consumer.commit(offsets=[next_offset], asynchronous=True)
        return True

    async def checkpoint_end(self, partition: str) -> None:
        return None

    async def stop(self) -> None:
        self._stopping = True

    async def close(self) -> None:
        """Commit the last checkpoints synchronously and release the client, waiting at most
        ``KafkaClientConfig.consumer_close_timeout_s`` (past it the client goes on closing on
        its daemon thread)."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        topics = ", ".join(sorted({r.topic for r in self.ranges.values()}))
        await self._executor.close_consumer(
            self._close_consumer, timeout_s=self._close_timeout_s, topic=topics
        )

    def _consume(self) -> list[Any]:
        with map_kafka_errors():  # a fatal client error, as its Shardline error
            messages: list[Any] = self._consumer.consume(self._batch_max, self._poll_timeout)
        return messages

    def _assign(self) -> tuple[set[str], dict[str, int]]:
        """Assign every non-empty range from its start (or its resumed checkpoint): the ranges
        left to read, and the offset each is read from.

        Behind the error boundary: with the brokers out of reach ``committed()`` times out
        with a ``KafkaException``, which reached the job untyped.
        """
        with map_kafka_errors():
            return self._assign_unmapped()

    def _assign_unmapped(self) -> tuple[set[str], dict[str, int]]:
        starts = {name: r.start for name, r in self.ranges.items()}
        if self.checkpoint_group is not None:
            committed = self._consumer.committed(
                [TopicPartition(r.topic, r.partition) for r in self.ranges.values()], timeout=10.0
            )
            for tp in committed:
                name = partition_name(tp.topic, tp.partition)
                if tp.offset >= 0:
                    starts[name] = min(max(starts[name], tp.offset), self.ranges[name].end)
        remaining = {name for name, r in self.ranges.items() if starts[name] < r.end}
        for name in sorted(remaining):
            self._refuse_a_deleted_start(self.ranges[name], starts[name])
        self._consumer.assign(
            [
                TopicPartition(r.topic, r.partition, starts[name])
                for name, r in self.ranges.items()
                if name in remaining
            ]
        )
        return remaining, starts

    def _refuse_a_deleted_start(self, bound: OffsetRange, start: int) -> None:
        """Raise when the partition no longer holds the offset the range is read from.

        Kafka answers a fetch below the log's start (records removed by retention, or by
        ``DeleteRecords``) with ``OFFSET_OUT_OF_RANGE`` and librdkafka resets to the earliest
        offset (``auto.offset.reset``): the job replayed from there and finished with exit
        status 0, the range's first records silently missing.  The earliest offset is asked
        once, before reading, so the job says so instead.
        """
        low, _high = self._consumer.get_watermark_offsets(
            TopicPartition(bound.topic, bound.partition), timeout=10.0, cached=False
        )
        if low > start:
            gone_until = min(low, bound.end)
            raise ResourceNotFoundError(
                f"offsets {start} to {gone_until - 1} of {bound.name} no longer exist: the partition "
                f"now starts at offset {low} (removed by retention or deleted); replay from offset "
                f"{low} or later (--from-offset) to read what is left",
                code="OFFSET_OUT_OF_RANGE",
                service="kafka",
            )

    @staticmethod
    def _warn_waiting(bound: OffsetRange, end: int) -> None:
        """Say once that a range ends past what its partition holds: the replay waits for
        those offsets to be written, which looked like a hang when nothing said so."""
        log.warning(
            "%s holds offsets up to %d, but the range ends at %d: waiting for the rest to be "
            "written (stop the job to end it; a rerun resumes)",
            bound.name,
            end - 1,
            bound.end,
        )

    def _pause(self, finished: list[OffsetRange]) -> None:
        try:
            self._consumer.pause([TopicPartition(r.topic, r.partition) for r in finished])
        except Exception:  # noqa: BLE001 - pausing only saves fetches; the filter keeps the bound
            self._observer.on_event(events.KAFKA_PAUSE_FAILED)

    def _close_consumer(self) -> None:
        try:
            if self.checkpoint_group is not None and self.checkpoints:
                offsets = []
                for name, next_offset in self.checkpoints.items():
                    bound = self.ranges[name]
                    offsets.append(TopicPartition(bound.topic, bound.partition, next_offset))
                # The group coordinator out of reach fails this commit (_WAIT_COORD): typed.
                with map_kafka_errors():
                    self._consumer.commit(offsets=offsets, asynchronous=False)
        finally:
            self._consumer.close()
