"""Kafka / Amazon MSK consumer-group source with at-least-once offset commits.

:class:`KafkaSource` implements :class:`consumers.source.Source`, so the same pipeline that
reads Kinesis writes Kafka topics to the same sinks.  How the guarantee is kept:

* offsets are *stored* only when the pipeline checkpoints a position, i.e. after the sink
  acknowledged every record up to it (``enable.auto.offset.store=false`` and
  :meth:`KafkaSource.checkpoint` calls ``store_offsets``);
* librdkafka commits stored offsets every ``commit_interval_ms`` and again when partitions are
  revoked (``enable.auto.commit``); the revoke callback also commits them before a partition
  moves to another member -- synchronously on the consume thread, queued ahead of the
  revocation when the event loop's own non-waiting ``consume()`` served it (the loop never
  waits on the broker) -- so a rebalance loses nothing and redelivers at most what was not
  acknowledged yet;
* a restarted member resumes from the group's committed offsets;
* each assignment of a partition is a hold of its own (:attr:`SourceBatch.hold`): one assigned
  back is read again from the group's last commit, and the pipeline starts it afresh.

What librdkafka has already fetched is taken by the event loop itself with a ``consume()``
that does not wait (like a raw ``consume()`` loop: no thread hand-off while a backlog is
queued locally).  A ``consume()`` that waits (for one message: a record is handed out as soon
as it arrives) runs on one dedicated thread, so the event loop never waits on the broker; one
hop to that thread makes that call, takes what is queued behind the message without waiting
and, while that comes back full, up to ``_EXTRA_CONSUMES`` more that do not wait.  The loop
hands a hop's batches out while the thread is idle: the two threads never compete for the GIL
(a fetch made ahead while the loop hands out the previous one waited for the GIL on every
``consume()`` and halved throughput).  Records are built from the fetched messages only when
read (:class:`~consumers._kafka_messages.KafkaRecords`).  ``fetch.queue.backoff.ms`` is
lowered from librdkafka's 1000 ms, which otherwise stalls ``consume()`` for about a second
whenever the prefetch queue fills.

Bounded jobs (replay by offsets or timestamps) use :class:`KafkaReplaySource`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from consumers._kafka_commits import CommitOutcomes
from consumers._kafka_lag import LagSampler, PartitionLag
from consumers._kafka_messages import KafkaRecords, lazy_batches, partition_name
from consumers._kafka_replay import KafkaReplaySource, OffsetRange, ranges_for_times
from consumers._kafka_thread import ConsumerThread
from consumers._kafka_token import token_failure_reporter
from consumers.source import SourceBatch
from shardline import metrics_events as events
from shardline.errormap import from_kafka_error, map_kafka_errors
from shardline.errors import (
    CheckpointError,
    ClosedError,
    ConfigurationError,
    ShardlineError,
    ValidationError,
)
from shardline.eventid import EventIdKey
from shardline.kafka_config import KafkaClientConfig, refuse_security_keys
from shardline.lograte import RepeatedWarning
from shardline.metrics import MetricsObserver, guard_observer
from shardline.records import KafkaAck, KafkaPosition, Position
from shardline.validation import validate_topic_name

__all__ = [
    "KafkaConsumerConfig",
    "KafkaRecords",
    "KafkaReplaySource",
    "KafkaSource",
    "OffsetRange",
    "consumer_lag",
    "end_offsets_from_acks",
    "ranges_for_times",
]

log = logging.getLogger(__name__)

_Fetched = tuple[list[Any], Mapping[str, int]]
"""One ``consume()`` call's messages, and the holds (:attr:`KafkaSource._holds`) they were read under."""

_EXTRA_CONSUMES = 7
"""Non-waiting ``consume()`` calls one hop may add after a full one: while a backlog is queued
locally, five calls share one hand-off between the consume thread and the event loop."""


@dataclass(frozen=True, slots=True)
class KafkaConsumerConfig:
    """How a :class:`KafkaSource` joins its group and fetches.

    Attributes:
        group_id: the consumer group; members of one group share the partitions.
        auto_offset_reset: where a partition without a committed offset starts.
        commit_interval_ms: how often stored (acknowledged) offsets are committed.
        session_timeout_ms: how long the group waits before it declares a silent member
            dead.  Tests use a few seconds; production keeps the broker-friendly default.
        max_poll_interval_ms: longest gap between two ``consume()`` calls before the member
            is removed from the group (the pipeline pausing for a slow sink counts).
        fetch_queue_backoff_ms: see the module docstring; keep it low.
        batch_max_messages / poll_timeout_s: one ``consume()`` call's size, and how long a
            waiting fetch may wait for its first message (it returns as soon as one arrives).
        with_timestamps: fill ``ConsumedRecord.arrival_time`` from the message timestamp.
        lag_interval_s: how often each owned partition's lag in messages is measured and
            reported (``kafka_lag_messages``), from values the client already holds; 0
            measures after every ``consume()`` call.
        read_committed: skip messages of aborted transactions.
        librdkafka: further consumer properties passed through unchanged; TLS and SASL
            properties are refused (set them through ``KafkaClientConfig.security``).
        event_id_key: the deployment's event-id key; a message's event-id header is its
            identity only when the ``shardline-event-id-mac`` header verifies with it, else
            the identity is topic/partition/offset (docs/security.md).
    """

    group_id: str
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    commit_interval_ms: int = 5_000
    session_timeout_ms: int = 45_000
    max_poll_interval_ms: int = 300_000
    fetch_queue_backoff_ms: int = 10
    batch_max_messages: int = 1_000
    poll_timeout_s: float = 0.5
    with_timestamps: bool = True
    lag_interval_s: float = 1.0
    read_committed: bool = True
    librdkafka: dict[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)
    event_id_key: EventIdKey | None = field(default=None, repr=False, hash=False, compare=False)

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.group_id:
            problems.append("group_id must not be empty")
        if self.auto_offset_reset not in ("earliest", "latest"):
            problems.append("auto_offset_reset must be 'earliest' or 'latest'")
        if self.commit_interval_ms < 1:
            problems.append("commit_interval_ms must be positive")
        if self.session_timeout_ms < 1000:
            problems.append("session_timeout_ms must be >= 1000")
        if self.max_poll_interval_ms < self.session_timeout_ms:
            problems.append("max_poll_interval_ms must be >= session_timeout_ms")
        if self.fetch_queue_backoff_ms < 0:
            problems.append("fetch_queue_backoff_ms must be >= 0")
        if not 1 <= self.batch_max_messages <= 1_000_000:
            problems.append("batch_max_messages must be in 1..1000000")
        if self.poll_timeout_s <= 0:
            problems.append("poll_timeout_s must be > 0")
        if not (math.isfinite(self.lag_interval_s) and self.lag_interval_s >= 0):
            problems.append("lag_interval_s must be a finite number >= 0")
        try:
            refuse_security_keys(self.librdkafka, "KafkaConsumerConfig.librdkafka")
        except ConfigurationError as exc:
            problems.append(str(exc))
        if problems:
            raise ConfigurationError("; ".join(problems))

    def to_confluent(self) -> dict[str, Any]:
        refuse_security_keys(self.librdkafka, "KafkaConsumerConfig.librdkafka")  # the dict is mutable
        return {
            "group.id": self.group_id,
            "auto.offset.reset": self.auto_offset_reset,
            "enable.auto.commit": True,
            "enable.auto.offset.store": False,
            "auto.commit.interval.ms": self.commit_interval_ms,
            "session.timeout.ms": self.session_timeout_ms,
            "max.poll.interval.ms": self.max_poll_interval_ms,
            "fetch.queue.backoff.ms": self.fetch_queue_backoff_ms,
            "isolation.level": "read_committed" if self.read_committed else "read_uncommitted",
            **self.librdkafka,
        }


def _mapped_consume(consume: Callable[[int, float], list[Any]]) -> Callable[[int, float], list[Any]]:
    """``consume`` behind the one error boundary: a ``KafkaException`` (a fatal client error,
    an unknown topic under ``allow.auto.create.topics=false``) becomes its Shardline error,
    and the happy path pays one ``try`` per call, not per message."""

    def mapped(count: int, timeout: float) -> list[Any]:
        try:
            return consume(count, timeout)
        except KafkaException:
            with map_kafka_errors():
                raise

    return mapped


def _raise_for_message_error(err: KafkaError, observer: MetricsObserver) -> None:
    """A consume() result carrying an error: fatal ones stop the source, others are reported."""
    if err.code() == KafkaError._PARTITION_EOF:
        return
    mapped = from_kafka_error(err)
    if err.fatal():
        raise mapped
    observer.on_event(events.KAFKA_CONSUMER_ERROR, error=type(mapped).__name__)
    log.warning("kafka consumer error: %s (%s)", type(mapped).__name__, err.name())


class KafkaSource:
    """A consumer-group member yielding one :class:`SourceBatch` per partition per fetch.

    ``consumer_factory`` builds the confluent-kafka ``Consumer`` from its configuration dict
    (inject a double in unit tests); by default it is ``confluent_kafka.Consumer``.
    """

    def __init__(
        self,
        topics: Iterable[str],
        client: KafkaClientConfig,
        config: KafkaConsumerConfig,
        *,
        observer: MetricsObserver | None = None,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> None:
        self.topics = tuple(topics)
        if not self.topics:
            raise ValidationError("give at least one topic name")
        for topic in self.topics:
            validate_topic_name(topic)
        self.config = config
        self._observer: MetricsObserver = guard_observer(observer)
        self._client_errors = RepeatedWarning(log)
        self._commits = CommitOutcomes(
            self._observer,
            log,
            lost="nothing this member acknowledged is committed, so every restart would read it again",
        )
        """How the offset commits went (:meth:`_on_commit`); a commit refused for good is raised
        by the next :meth:`checkpoint`."""
        conf = {
            **client.to_confluent(),
            **config.to_confluent(),
            "error_cb": self._on_client_error,
            "on_commit": self._on_commit,
        }
        self._consumer = client.new_client(
            consumer_factory,
            conf,
            on_token_failure=token_failure_reporter(self._observer, self._client_errors),
        )
        self._lag = LagSampler(self._consumer, config.lag_interval_s)
        self._executor = ConsumerThread("shardline-kafka-consume")
        self._close_timeout_s = client.consumer_close_timeout_s
        self._stopping = False
        self._closed = False
        self._subscribed = False
        self._assigned: set[str] = set()
        self._assignment_lock = threading.Lock()
        """Held while a checkpoint checks and stores, and while a revocation marks partitions
        revoked: a revoke's commit then either carries an offset stored or it was refused."""
        self._let_go: dict[str, int] = {}
        """Per partition, the offset of the last checkpoint skipped after a revoke."""
        self._rebalances = 0
        """Rebalance callbacks served so far (a hop joins two calls' messages only without one)."""
        self._holds: Mapping[str, int] = {}
        """Per partition, how many times the group assigned it to this member: the hold of
        :attr:`SourceBatch.hold`.  Replaced whole by the assign callback, never changed in
        place, so a fetch keeps the one it read under."""
        self._handed: dict[str, int] = {}
        """Per partition, the hold of the last batch handed out: the pipeline's positions of
        the partition are of that assignment until a batch of a newer one is handed out."""
        self._next_fetch: asyncio.Future[tuple[list[_Fetched], list[PartitionLag]]] | None = None
        self._fetched: deque[_Fetched] = deque()
        """Fetched message lists not made into batches yet (one per ``consume()`` call), each
        with the holds in force when the call returned."""
        self._held: deque[SourceBatch] = deque()
        """Batches made but not handed out: a caller that leaves :meth:`batches` gets them when
        it comes back (librdkafka's position is already past them)."""
        self._loop_thread: int | None = None

    def __repr__(self) -> str:
        return f"KafkaSource(topics={self.topics!r}, group_id={self.config.group_id!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- Source ------------------------------------------------------------------------------

    async def batches(self) -> AsyncIterator[SourceBatch]:
        """Yield batches until :meth:`stop`; each holds one partition's records in order."""
        if self._closed:
            raise ClosedError("source is closed")
        loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if not self._subscribed:
            await loop.run_in_executor(self._executor, self._subscribe)
        consume = _mapped_consume(self._consumer.consume)
        count, timeout = self.config.batch_max_messages, self.config.poll_timeout_s
        with_timestamps = self.config.with_timestamps
        event_id_key = self.config.event_id_key
        observer = self._observer
        sample_lag = self._lag.sample

        def on_error(err: KafkaError) -> None:
            _raise_for_message_error(err, observer)

        def fetch_more(count: int, timeout: float) -> tuple[list[_Fetched], list[PartitionLag]]:
            """One hop of the consume thread: wait for the first message, take what is queued
            behind it without waiting, then, while each call comes back full (a backlog is
            queued locally), up to ``_EXTRA_CONSUMES`` more that do not wait.

            The wait asks for one message: ``consume(count, timeout)`` returns only once it
            has ``count`` messages or the whole timeout has passed, so below ``count``
            messages per ``poll_timeout_s`` every record sat in the client for up to that
            long (end-to-end p50 335 ms at 2,000 messages/s, 4 partitions, on the local
            broker).  The first message and what was queued behind it make one list (one
            batch per partition), unless a rebalance was served in between; each further
            call's messages stay one list (batches keep their size cap).  The partitions' lag
            is measured here too, when due, where the consumer already is (no hop of its own).

            Each list keeps the holds in force when its call returned: the assign callback
            runs inside ``consume()``, and librdkafka drops what a call had gathered of a
            partition before the partition was revoked, so a call's messages of a partition
            all belong to the assignment in force at its end."""
            fetched = [(consume(1, timeout), self._holds)]
            if fetched[0][0] and count > 1:
                rebalances = self._rebalances
                rest = consume(count - 1, 0)
                if self._rebalances == rebalances:
                    fetched[0][0].extend(rest)
                else:  # the two calls straddle a reassignment: keep them apart
                    fetched.append((rest, self._holds))
            while len(fetched[-1][0]) == count and len(fetched) <= _EXTRA_CONSUMES:
                fetched.append((consume(count, 0), self._holds))
            return fetched, sample_lag()

        held, pending, handed = self._held, self._fetched, self._handed
        while True:  # what was fetched is handed out, also after stop(); then no new fetch
            if held:
                batch = held.popleft()
                handed[batch.partition] = batch.hold
                yield batch
                continue
            if pending:
                # One list at a time: a message error raises after the batches before it.
                messages, holds = pending.popleft()
                held.extend(
                    lazy_batches(
                        messages,
                        with_timestamp=with_timestamps,
                        on_error=on_error,
                        event_id_key=event_id_key,
                        holds=holds,
                    )
                )
                continue
            if self._stopping:
                break
            self._commits.raise_if_refused()  # also when nothing new is acknowledged
            fetch = self._next_fetch
            if fetch is None:
                # What librdkafka already holds is taken here without waiting: no hop to the
                # consume thread while a backlog is queued locally.  The loop still gets its
                # turn between takes.
                await asyncio.sleep(0)
                if self._stopping:
                    break
                ready = consume(count, 0)
                if ready:
                    pending.append((ready, self._holds))
                    self._report_lag(sample_lag())
                else:
                    fetch = self._next_fetch = loop.run_in_executor(
                        self._executor, fetch_more, count, timeout
                    )
            if fetch is not None:
                # Shielded: a caller cancelled while waiting leaves the fetch for the next call.
                fetched, lags = await asyncio.shield(fetch)
                self._next_fetch = None
                pending.extend(fetched)
                self._report_lag(lags)

    def _report_lag(self, lags: list[PartitionLag]) -> None:
        """Each measured partition's lag, reported on the event loop's thread (as the
        pipeline's events are), so an observer's lag map is never changed under it."""
        for topic, partition, lag in lags:
            self._observer.on_event(events.KAFKA_LAG_MESSAGES, lag, topic=topic, partition=partition)

    async def checkpoint(self, partition: str, position: Position) -> bool:
        """Store ``position + 1`` as the partition's next offset; librdkafka commits it.

        A partition that was revoked meanwhile is skipped (``False``: nothing stored): its new
        owner re-reads from the last committed offset, so nothing is lost (at-least-once).  So
        is a position of an earlier assignment of a partition assigned back since (no batch of
        the new one handed out yet): this member reads it again from the group's last commit,
        which another member may have moved past that position meanwhile.
        """
        if not isinstance(position, KafkaPosition):
            raise CheckpointError(f"a Kafka source cannot checkpoint a {type(position).__name__}")
        self._commits.raise_if_refused()
        try:
            with self._assignment_lock:  # store_offsets only records the offset: never waits
                hold = self._holds.get(partition)
                assigned = partition in self._assigned and self._handed.get(partition, hold) == hold
                if assigned:
                    self._consumer.store_offsets(
                        offsets=[TopicPartition(position.topic, position.partition_id, position.offset + 1)]
                    )
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if not isinstance(err, KafkaError) or err.code() not in (
                KafkaError._STATE,
                KafkaError._UNKNOWN_PARTITION,
            ):
                raise CheckpointError(f"could not store offset for {partition}") from exc
            assigned = False  # librdkafka revoked it first
        if not assigned and self._let_go.get(partition) != position.offset:
            # the pipeline asks for a position let go again at every pass (the partition may
            # be assigned back): one skip counted per position, not per pass
            self._let_go[partition] = position.offset
            self._observer.on_event(events.KAFKA_CHECKPOINT_AFTER_REVOKE, partition=partition)
        return assigned

    async def checkpoint_end(self, partition: str) -> None:
        """Kafka partitions do not close; nothing to record."""
        return None

    async def stop(self) -> None:
        """Stop fetching; ``batches()`` ends within one poll timeout."""
        self._stopping = True

    # --- beyond the Source contract ------------------------------------------------------------

    async def commit(self) -> None:
        """Commit the stored (acknowledged) offsets now, synchronously."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._commit_stored)

    async def positions(self) -> dict[str, int]:
        """The next offset this member will read, per assigned partition."""
        loop = asyncio.get_running_loop()

        def read() -> dict[str, int]:
            assignment = self._consumer.assignment()
            return {
                partition_name(tp.topic, tp.partition): tp.offset
                for tp in self._consumer.position(assignment)
                if tp.offset >= 0
            }

        return await loop.run_in_executor(self._executor, read)

    async def close(self, timeout: float | None = None) -> None:
        """Commit what was acknowledged, leave the group and release the client.

        ``timeout`` (default ``KafkaClientConfig.consumer_close_timeout_s``) bounds the wait:
        past it, the client goes on closing on its daemon thread and this returns (the group
        rebalances on session timeout at the latest).
        """
        if self._closed:
            return
        self._stopping = True
        self._closed = True
        await self._executor.close_consumer(
            self._close_consumer,
            timeout_s=self._close_timeout_s if timeout is None else timeout,
            topic=", ".join(self.topics),
        )

    # --- consume thread ------------------------------------------------------------------------

    def _subscribe(self) -> None:
        with map_kafka_errors():
            self._consumer.subscribe(list(self.topics), on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._subscribed = True

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        """Count the partitions as this member's, each under a new hold.

        librdkafka forgets a partition's stored offset when it leaves the assignment and reads
        it again from the group's last commit when it comes back (to this member or another):
        whatever the pipeline knew of it before -- tickets in flight, positions checkpointed
        (stored, yet never committed when the member had been dropped) -- is of the earlier
        assignment.  A new hold makes the pipeline start the partition afresh, as it does for
        a Kinesis lease taken back.
        """
        self._rebalances += 1
        names = [partition_name(tp.topic, tp.partition) for tp in partitions]
        holds = dict(self._holds)
        for name in names:
            holds[name] = holds.get(name, 0) + 1
        self._holds = holds
        with self._assignment_lock:
            self._assigned.update(names)
        self._lag.assigned(partitions)
        self._observer.on_event(events.KAFKA_PARTITIONS_ASSIGNED, len(partitions))

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        """Commit acknowledged offsets before the partitions go to another member.

        The partitions are marked revoked before the commit: served on the consume thread,
        the commit waits on the broker while the event loop goes on checkpointing, and an
        offset stored in that wait would count as checkpointed without ever being committed
        (its records are then delivered again to the new owner).  Marked first, such a
        checkpoint is refused instead, and the commit carries every offset stored before.
        Served on the event loop (its non-waiting ``consume()``), the commit is queued ahead of
        the revocation instead of awaited, so the loop never waits on the broker.
        """
        self._rebalances += 1
        with self._assignment_lock:
            self._assigned.difference_update(partition_name(tp.topic, tp.partition) for tp in partitions)
        self._lag.revoked(partitions)
        try:
            self._commit_stored(asynchronous=threading.get_ident() == self._loop_thread)
        except ShardlineError as exc:
            # A member the group already dropped (a slow sink past max.poll.interval.ms) gets
            # ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID here.  Its uncommitted records are
            # redelivered to the new owner (at least once); raising from the callback stopped
            # the whole consumer instead, with the revoked partitions still counted as its own.
            failed = type(exc).__name__
            self._observer.on_event(events.KAFKA_CLIENT_ERROR, error=failed)
            log.warning("commit on revoke failed (%s); the next owner resumes at the last commit", failed)
        self._observer.on_event(events.KAFKA_PARTITIONS_REVOKED, len(partitions))

    def _commit_stored(self, *, asynchronous: bool = False) -> None:
        try:
            self._consumer.commit(asynchronous=asynchronous)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError._NO_OFFSET:
                return  # nothing acknowledged since the last commit
            with map_kafka_errors():
                raise

    def _close_consumer(self) -> None:
        try:
            if self._subscribed:
                self._commit_stored()
        except ShardlineError as exc:  # a dropped member's last commit: the records are re-read
            failed = type(exc).__name__
            log.warning("commit on close failed (%s); the next owner resumes at the last commit", failed)
        finally:
            self._consumer.close()

    def _on_commit(self, err: KafkaError | None, partitions: list[Any]) -> None:
        """The outcome of every offset commit (automatic, on revoke, on close), served inside
        ``consume()`` on the thread that called it (:class:`CommitOutcomes`).

        A refusal for good fails the next :meth:`checkpoint`; any other failure is retried by
        the next automatic commit and is counted and logged.
        """
        self._commits.on_commit(err, partitions)

    def _on_client_error(self, err: KafkaError) -> None:
        mapped = from_kafka_error(err)
        self._observer.on_event(events.KAFKA_CLIENT_ERROR, error=type(mapped).__name__)
        # one line per kind of error a minute: librdkafka reports every reconnect attempt
        self._client_errors.warning(
            err.code(), "kafka client error: %s (%s)", type(mapped).__name__, err.name()
        )


def end_offsets_from_acks(acks: Iterable[KafkaAck]) -> dict[str, int]:
    """The end offset (highest known delivered offset + 1) per partition, from producer acks.

    This is the "delivery offsets" side of lag when the broker's high watermark cannot be
    trusted (the local broker reports wrong ones; MSK reports correct ones).  An ack without
    an offset (``acks="0"``, a retry answered as a duplicate sequence) sets no end, wherever
    its message landed: a partition ends after the highest offset an ack names, and one whose
    acks name none is left out.
    """
    ends: dict[str, int] = {}
    for ack in acks:
        if ack.offset is None:
            continue
        name = partition_name(ack.topic, ack.partition)
        if ack.offset + 1 > ends.get(name, 0):
            ends[name] = ack.offset + 1
    return ends


def consumer_lag(positions: Mapping[str, int], end_offsets: Mapping[str, int]) -> dict[str, int]:
    """Messages between each partition's next read position and its end offset (never < 0).

    Partitions with an end offset but no position yet lag by the whole end offset.
    """
    return {name: max(0, end - positions.get(name, 0)) for name, end in end_offsets.items()}
