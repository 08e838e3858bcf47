"""The consumer pipeline: source -> transform -> sink -> acknowledge -> checkpoint.

One :class:`Pipeline` moves records from a :class:`~consumers.source.Source` (Kinesis
polling or fan-out, Kafka, a replay job) into a :class:`~consumers.sinks.base.Sink`, and
tells the source how far it may checkpoint.  The guarantees, and how they are kept:

* **At-least-once.**  A partition is checkpointed only up to the lowest record that is not
  yet written or dead-lettered (:class:`~consumers._pipeline_tracker.AckTracker`), at
  ``checkpoint_interval`` and once more on shutdown; a partition whose lease was lost is
  not checkpointed again until the source takes its lease back and reads it anew.  Each
  batch names the hold of the lease it was read under (:attr:`SourceBatch.hold`): a new one
  starts the partition afresh, whether or not a refused checkpoint told of the loss.
* **Per-partition order.**  Each partition has a lane with ``partition_concurrency``
  writers (1 by default: one sink write in flight per shard, in order).
* **Bounded memory.**  At most ``max_in_flight_records`` records are read but unfinished;
  when the bound is hit the reader stops pulling from the source (a throttled or slow sink
  therefore pauses reading instead of growing buffers).
* **One write workflow.**  Sinks try each record once and report a per-record outcome; the
  pipeline alone retries, bisects and dead-letters (:mod:`consumers._pipeline_write`).  Only
  the records that failed are sent again.
* **An outage is waited out, never dead-lettered.**  Records throttled, or whose call failed
  with a *retriable* error (5xx, connection refused), are resent with full-jitter back-off
  for as long as ``PipelineConfig.sink_retry`` allows (by default for as long as it takes).
  The lane stays busy meanwhile, the in-flight bound fills and reading pauses: nothing is
  dropped, nothing dead-lettered, memory stays bounded.  A bounded ``sink_retry`` (or the
  run's ``deadline``) makes the run stop with :class:`~shardline.errors.SinkError` when it
  gives up (still nothing dead-lettered).
* **Poison records do not stall a shard.**  A record the sink rejects, or that keeps
  failing transiently (``entry_attempts`` sends), goes to the dead-letter destination with
  the reason, the error type, the attempts and its position; a call failing as a whole with
  a *non-retriable* error (any error outside the Shardline tree counts as one) is bisected
  until the record at fault is isolated.  A destination that cannot be written at all
  (access denied, no such table) stops the run instead: nothing is dead-lettered.  Without a
  dead-letter destination the pipeline stops with :class:`~shardline.errors.SinkError` and
  checkpoints nothing past the first record that could not be resolved (the records before
  it count as acknowledged, which is what lets the Lambda adapter report the exact failed
  record).
* **Supervised.**  A lane, the checkpoint loop or a source that fails makes :meth:`Pipeline.run`
  raise the cause promptly (after checkpointing what is resolved); a raising transform, or
  one returning anything but a record or ``None``, is that record's error (dead-lettered);
  a raising observer is logged once and counted.
* **Graceful shutdown.**  :meth:`Pipeline.stop` stops reading, drains what was read,
  checkpoints and lets :meth:`Pipeline.run` return; :func:`run_until_signal` wires that to
  SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from consumers._pipeline_tracker import AckTracker, Ticket
from consumers._pipeline_write import StoppedWithRecordsUnwritten, WriteWorkflow, dead_letter_entry, sink_name
from consumers.sinks.base import DeadLetter, DeadLetterEntry, Sink
from consumers.source import CountsLostPartitions, Source, SourceBatch
from shardline import metrics_events as events
from shardline.errors import CheckpointError, ConfigurationError, LeaseLostError, ShardlineError, SinkError
from shardline.events_wait import wait_until_set
from shardline.metrics import MetricsObserver, guard_observer
from shardline.records import ConsumedRecord, Position, RefusedRecord
from shardline.retry import RetryPolicy
from shardline.tasks import cancel_requested, stray_cancel

__all__ = [
    "SINK_RETRY_FOREVER",
    "Pipeline",
    "PipelineConfig",
    "PipelineStats",
    "Transform",
    "run_until_signal",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

Transform: TypeAlias = Callable[[ConsumedRecord], "ConsumedRecord | Awaitable[ConsumedRecord | None] | None"]
"""User hook: return the record to write (possibly changed), or ``None`` to drop it."""

SINK_RETRY_FOREVER = RetryPolicy(max_attempts=None, initial_backoff=0.1, max_backoff=5.0, deadline=None)
"""The default sink retry: 100 ms doubling to 5 s, full jitter, never giving up on an outage."""


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """How the pipeline batches, bounds and checkpoints.  Every default is production-safe.

    ``max_in_flight_records``: records read but not yet finished before reading pauses.
    ``partition_concurrency``: sink writes in flight per partition (1 keeps per-shard order).
    ``max_sink_batch_records``: the largest batch handed to ``sink.write`` (source batches are
    split); the sink splits further to its API's own limits.
    ``checkpoint_interval``: seconds between checkpoints; redeliveries after a crash are
    bounded by what one interval reads.
    ``sink_retry``: how records throttled or unavailable (and a dead-letter put failing
    retriably) are retried while reading pauses; the default never gives up, a bounded
    policy makes the run stop with ``SinkError`` instead.  Non-retriable failures of a whole
    call are bisected at once.
    ``entry_attempts``: sends of one record that failed transiently *on its own* (the
    destination answered "retry" for it) before it is dead-lettered.
    ``drain_timeout``: seconds :meth:`Pipeline.stop` waits for in-flight writes before it
    abandons them (they are redelivered after restart); ``None`` waits as long as needed.
    ``checkpoint_outage_limit``: seconds a partition's checkpoints may keep failing with
    retriable errors (throttled, unavailable) before the run stops with
    :class:`~shardline.errors.CheckpointError`.  The default is a Kinesis lease's expiry
    (three 10 s renewal intervals): past it another worker may count the lease abandoned and
    take it, so checkpoints this worker cannot write are no longer its to write.  A
    non-retriable store error (access denied, a deleted table) stops the run at once.
    """

    max_in_flight_records: int = 10_000
    partition_concurrency: int = 1
    max_sink_batch_records: int = 500
    checkpoint_interval: float = 10.0
    sink_retry: RetryPolicy = SINK_RETRY_FOREVER
    entry_attempts: int = 8
    drain_timeout: float | None = None
    checkpoint_outage_limit: float = 30.0

    def __post_init__(self) -> None:
        if self.max_in_flight_records < 1:
            raise ConfigurationError("max_in_flight_records must be at least 1")
        if self.partition_concurrency < 1:
            raise ConfigurationError("partition_concurrency must be at least 1")
        if self.max_sink_batch_records < 1:
            raise ConfigurationError("max_sink_batch_records must be at least 1")
        if not self.checkpoint_interval > 0:
            raise ConfigurationError("checkpoint_interval must be a positive number of seconds")
        if not isinstance(self.sink_retry, RetryPolicy):
            raise ConfigurationError("sink_retry must be a shardline.retry.RetryPolicy")
        if isinstance(self.entry_attempts, bool) or not isinstance(self.entry_attempts, int):
            raise ConfigurationError("entry_attempts must be an int")
        if self.entry_attempts < 1:
            raise ConfigurationError("entry_attempts must be at least 1")
        if self.drain_timeout is not None and self.drain_timeout < 0:
            raise ConfigurationError("drain_timeout must be >= 0 or None")
        if not self.checkpoint_outage_limit > 0:
            raise ConfigurationError("checkpoint_outage_limit must be a positive number of seconds")


@dataclass(slots=True)
class PipelineStats:
    """Counters of one run, for tests and the CLI's final log line.

    The write counters (``records_out``, ``duplicates``, ``dead_lettered``, ``retries``) and
    ``partitions_lost`` are brought up to date when :meth:`Pipeline.run` returns, or on demand by
    :meth:`Pipeline.sync_stats`.
    """

    records_in: int = 0
    records_out: int = 0
    """Records the sink holds now: written, or found already there (``duplicates``)."""
    duplicates: int = 0
    dead_lettered: int = 0
    filtered: int = 0
    retries: int = 0
    checkpoints: int = 0
    partitions_ended: int = 0
    partitions_lost: int = 0
    """Leases the source lost (:class:`~consumers.source.CountsLostPartitions`), each counted
    once where the source learnt of it; 0 for a source without leases."""


@dataclass(slots=True, eq=False)
class _Work:
    ticket: Ticket
    records: Sequence[ConsumedRecord]
    rejected: list[DeadLetterEntry]
    positions: Sequence[Position]
    """Where each of ``records`` was read (a transform may hand back a changed record)."""
    dimensions: Mapping[str, str]
    """The metric dimensions of the partition (:meth:`Pipeline._dimensions_of`)."""
    hold: int
    """Which hold of the partition's lease the records were read under (:attr:`SourceBatch.hold`)."""


@dataclass(slots=True, eq=False)
class _Lane:
    queue: asyncio.Queue[_Work | None]
    workers: list[asyncio.Task[None]]
    running: int = 0
    """Workers not yet ended by the ``None`` the lane's partition end queues for each."""


class Pipeline:
    """Runs one source into one sink until the source ends or :meth:`stop` is called."""

    def __init__(
        self,
        source: Source,
        sink: Sink,
        *,
        config: PipelineConfig | None = None,
        dead_letter: DeadLetter | None = None,
        transform: Transform | None = None,
        observer: MetricsObserver | None = None,
        deadline: float | None = None,
    ) -> None:
        """``deadline``: event-loop time (``loop.time()``) after which no write is attempted
        and no transform awaited any more, and the records still unwritten are reported
        failed (:class:`SinkError`); the Lambda handler sets it from the invocation's
        remaining time."""
        self._source = source
        self._sink = sink
        self._config = config if config is not None else PipelineConfig()
        self._transform = transform
        self._observer: MetricsObserver = guard_observer(observer)
        self._workflow = WriteWorkflow(
            sink,
            dead_letter,
            retry=self._config.sink_retry,
            entry_attempts=self._config.entry_attempts,
            observer=self._observer,
            deadline=deadline,
        )
        self.stats = PipelineStats()
        self._tracker = AckTracker()
        self._lanes: dict[str, _Lane] = {}
        self._ending_lanes: set[_Lane] = set()
        """Lanes of ended partitions still writing their last records (drained and cancelled
        with the others, then dropped): a backfill's million archive objects must not leave a
        million idle lanes behind."""
        self._dimensions: dict[str, dict[str, str]] = {}
        self._in_flight = 0
        self._capacity = asyncio.Condition()
        self._checkpointed: dict[str, Position] = {}
        self._checkpoint_failing_since: dict[str, float] = {}
        """Per partition, when its checkpoints began failing (loop time); cleared by a success."""
        self._lost: set[str] = set()
        """Partitions whose current hold was lost (a checkpoint refused): until a batch of a
        new hold arrives, nothing of them is written or checkpointed."""
        self._holds: dict[str, int] = {}
        """Per partition, the hold of its lease that the latest batch was read under (the
        source's number): work of another hold is neither written nor acknowledged."""
        self._ended: set[str] = set()
        self._checkpoint_lock = asyncio.Lock()
        self._checkpoint_now = asyncio.Event()
        self._checkpointer_done = False
        self._stopping = asyncio.Event()
        self._failure: BaseException | None = None
        self._running = False
        self._finished = asyncio.Event()

    def __repr__(self) -> str:
        return f"Pipeline(source={self._source!r}, sink={self._sink!r}, config={self._config!r})"

    @property
    def config(self) -> PipelineConfig:
        return self._config

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> PipelineStats:
        """Consume until the source ends or :meth:`stop`; drain, checkpoint, close the source
        (which releases its leases or leaves its consumer group), return the stats.

        Raises :class:`SinkError` when records could neither be written nor dead-lettered,
        and the cause itself when a lane, the checkpoint loop or the source failed (after
        draining the other partitions and checkpointing what was finished); a
        :class:`~shardline.errors.BackgroundTaskError` caused by it when a lane or the checkpoint loop met a
        ``CancelledError`` nobody sent (raised as is, the caller took it for its own cancel).
        """
        if self._running:
            raise ConfigurationError("a pipeline runs once at a time")
        self._running = True
        self._finished.clear()
        self._checkpointer_done = False
        checkpointer = asyncio.create_task(self._checkpoint_loop(), name="pipeline-checkpointer")
        try:
            if not self._stopping.is_set():
                await self._read()
            await self._drain()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - raised by run() below, after the drain
            # the source failed: finish what was read (bounded by close()), then raise it
            await self._fail(exc, "the source failed", abandon_writes=False)
            await self._drain()
        finally:
            self._checkpointer_done = True
            self._checkpoint_now.set()
            await asyncio.gather(checkpointer, return_exceptions=True)
            await self._cancel_lanes()
            await self._final_checkpoint()
            await self._close_source()
            self.sync_stats()
            self._running = False
            self._finished.set()
        if self._failure is not None:
            raise self._failure
        return self.stats

    async def close(self, timeout: float | None = None) -> None:
        """Stop reading and wait up to ``timeout`` seconds for :meth:`run` to drain, checkpoint
        and return; then abandon the writes still in flight (their records are not
        acknowledged and are redelivered) and wait for :meth:`run` to return.

        ``None`` waits as long as the drain takes.  Does nothing when the pipeline is not
        running.
        """
        await self.stop()
        if not self._running:
            return
        if not await wait_until_set(self._finished, timeout):
            logger.warning(
                "close timed out; abandoning in-flight writes (they will be redelivered)",
                extra={"unfinished_records": self._tracker.unfinished_records},
            )
            self._workflow.abort.set()
            await self._finished.wait()

    def sync_stats(self) -> PipelineStats:
        """Bring the write counters of :attr:`stats` up to date now, and return them.

        :meth:`run` does so when it returns; a replay slice calls this at every heartbeat so
        the job's ledger (and ``replay status``) follows the writes while the slice runs.
        """
        counts = self._workflow.counts
        self.stats.records_out = counts.written + counts.duplicates
        self.stats.duplicates = counts.duplicates
        self.stats.dead_lettered = counts.dead_lettered
        self.stats.retries = counts.retries
        if isinstance(self._source, CountsLostPartitions):
            self.stats.partitions_lost = self._source.partitions_lost
        return self.stats

    async def _fail(self, exc: BaseException, what: str, *, abandon_writes: bool = True) -> None:
        """Record the run's first failure and stop reading.

        With ``abandon_writes`` the writes in flight give up at once (another lane failed, or a
        bug): an outage wait elsewhere must not keep the failure from surfacing.  A failed
        source lets them finish (bounded by ``drain_timeout`` and :meth:`close`).
        """
        if self._failure is None:
            self._failure = exc
            logger.error(f"{what}; stopping", extra={"error_type": type(exc).__name__})
        if abandon_writes:
            self._workflow.abort.set()
        await self.stop()

    async def _close_source(self) -> None:
        """After the last checkpoint: let the source give up its leases / leave its group.

        A close failure must not hide the run's outcome: the leases then expire on their
        own and the checkpoints written above stand.
        """
        try:
            await self._source.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - logged; the checkpoints are already written
            logger.warning("closing the source failed", extra={"error_type": type(exc).__name__})

    async def stop(self) -> None:
        """Stop reading; :meth:`run` drains what was read, checkpoints and returns."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        async with self._capacity:
            self._capacity.notify_all()
        try:
            await self._source.stop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - stopping goes on; close() releases the rest
            logger.warning("stopping the source failed", extra={"error_type": type(exc).__name__})

    # --- reading --------------------------------------------------------------------------------

    async def _read(self) -> None:
        batches = self._source.batches()
        try:
            async for batch in batches:
                if not await self._accept(batch) or self._failure is not None:
                    break
        finally:
            close = getattr(batches, "aclose", None)
            if close is not None:
                await close()

    def _dimensions_of(self, batch: SourceBatch) -> dict[str, str]:
        """The dimensions of every event about ``batch``'s partition, built once per partition.

        ``stream`` or ``topic`` tells this consumer's series apart from another's in CloudWatch;
        ``partition`` (a shard, a topic-partition) stays for observers, and exporters drop it
        by default (a series per shard multiplies the metric count).  A name the source does
        not know is left out, never reported as "None".
        """
        dimensions = self._dimensions.get(batch.partition)
        if dimensions is None:
            dimensions = {"partition": batch.partition}
            if batch.stream:
                dimensions["stream"] = batch.stream
            if batch.topic:
                dimensions["topic"] = batch.topic
            self._dimensions[batch.partition] = dimensions
        return dimensions

    def _partition_dimensions(self, partition: str) -> Mapping[str, str]:
        """The dimensions of ``partition`` for the checkpoint events (it was read, so known)."""
        return self._dimensions.get(partition) or {"partition": partition}

    async def _accept(self, batch: SourceBatch) -> bool:
        """Hand ``batch`` to its partition's lane; ``False`` when stopping cut it short."""
        partition = batch.partition
        dimensions = self._dimensions_of(batch)
        count = len(batch.records)
        self.stats.records_in += count
        if count:
            self._observer.on_event(events.RECORDS_IN, count, **dimensions)
        if batch.millis_behind_latest is not None:
            self._observer.on_event(events.ITERATOR_AGE_MS, batch.millis_behind_latest, **dimensions)
        hold = batch.hold
        held = self._holds.get(partition)
        if held != hold:
            if held is None:
                self._holds[partition] = hold
            else:
                self._take_back(partition, hold)
        size = self._config.max_sink_batch_records
        chunks = [batch.records[start : start + size] for start in range(0, count, size)]
        if batch.end_of_partition or not chunks:
            chunks.append([])
        for index, chunk in enumerate(chunks):
            if not await self._reserve(len(chunk)):
                # stopping while the bound is hit: these records are never issued, so no
                # checkpoint can pass them and they are read again after restart
                return False
            try:
                kept, positions, rejected = await self._apply_transform(chunk)
            except _PastDeadline:
                # like the records a stop leaves unread: never issued, never acknowledged
                await self._release(len(chunk))
                failure = StoppedWithRecordsUnwritten(
                    "the run's deadline was reached with records untransformed"
                )
                await self._fail(failure, "the deadline passed while transforming")
                return False
            last_position = chunk[-1].position if chunk else None
            end = batch.end_of_partition and index == len(chunks) - 1
            ticket = self._tracker.issue(partition, len(chunk), last_position, end_of_partition=end)
            await self._lane(partition).queue.put(_Work(ticket, kept, rejected, positions, dimensions, hold))
        if batch.end_of_partition:
            self._end_lane(partition)
        return True

    def _take_back(self, partition: str, hold: int) -> None:
        """The source holds ``partition``'s lease anew (``hold``): start its bookkeeping afresh.

        The only rule for it, whether a refused checkpoint told of the loss or the source lost
        and took the lease back between two checkpoint passes.  The tickets of the earlier
        hold are dropped unfinished, so they can neither hold the new hold's watermark back
        nor move it (behind the new holder's position: records read again); their records
        were read by whoever held the lease meanwhile, and the new hold reads on from that
        worker's checkpoint.
        """
        self._lost.discard(partition)
        self._holds[partition] = hold
        self._tracker.forget(partition)
        self._checkpointed.pop(partition, None)
        self._checkpoint_failing_since.pop(partition, None)
        logger.info("lease taken back; reading the partition again", extra={"partition": partition})

    def _current(self, work: _Work) -> bool:
        """Whether ``work`` was read under the partition's lease as held now."""
        partition = work.ticket.partition
        return partition not in self._lost and work.hold == self._holds.get(partition)

    async def _reserve(self, count: int) -> bool:
        """Back-pressure: wait until ``count`` more records fit under the in-flight bound.

        Returns ``False`` (nothing reserved) when a stop was requested while waiting.
        """
        limit = self._config.max_in_flight_records

        def fits() -> bool:
            # a batch larger than the bound is admitted alone rather than never
            return self._in_flight == 0 or self._in_flight + count <= limit

        async with self._capacity:
            await self._capacity.wait_for(lambda: fits() or self._stopping.is_set())
            if not fits():
                return False
            self._in_flight += count
            return True

    async def _release(self, count: int) -> None:
        async with self._capacity:
            self._in_flight -= count
            self._capacity.notify_all()

    async def _apply_transform(
        self, records: Sequence[ConsumedRecord]
    ) -> tuple[Sequence[ConsumedRecord], Sequence[Position], list[DeadLetterEntry]]:
        refused = any(type(record) is RefusedRecord for record in records)
        if self._transform is None and not refused:
            return records, [record.position for record in records], []
        kept: list[ConsumedRecord] = []
        positions: list[Position] = []
        rejected: list[DeadLetterEntry] = []
        deadline = self._workflow.deadline
        loop = asyncio.get_running_loop()
        for record in records:
            if deadline is not None and loop.time() >= deadline:
                raise _PastDeadline
            if isinstance(record, RefusedRecord):
                # refused before it reached us (an aggregate over the expansion bounds): whole to the DLQ
                refusal = record.refusal
                rejected.append(
                    dead_letter_entry(
                        record,
                        record.position,
                        "record refused",
                        str(refusal),
                        type(refusal).__name__,
                        attempts=0,
                        destination="deaggregation",
                    )
                )
                continue
            if self._transform is None:
                kept.append(record)
                positions.append(record.position)
                continue
            try:
                result = self._transform(record)
                if inspect.isawaitable(result):
                    result = await (result if deadline is None else _until(result, deadline))
            except _PastDeadline:
                raise
            except (Exception, asyncio.CancelledError) as exc:  # one record's error, not the shard's
                if isinstance(exc, asyncio.CancelledError) and cancel_requested():
                    raise  # run() itself is cancelled
                # a CancelledError the transform raised itself (awaiting a future someone else
                # cancelled) is its error too: raised as is, run() ended as if cancelled
                rejected.append(
                    dead_letter_entry(
                        record,
                        record.position,
                        "transform failed",
                        str(exc),
                        type(exc).__name__,
                        attempts=1,
                        destination="transform",
                    )
                )
                continue
            if result is None:
                self.stats.filtered += 1
            elif not isinstance(result, ConsumedRecord):
                # as much the record's error as a raise: handed on, it failed the sink write,
                # was bisected down to and could not be dead-lettered either (the entry held
                # no record), so the run stopped at it, and under Lambda every retry did
                rejected.append(
                    dead_letter_entry(
                        record,
                        record.position,
                        "transform failed",
                        f"returned a {type(result).__name__}, not a ConsumedRecord or None",
                        "TypeError",
                        attempts=1,
                        destination="transform",
                    )
                )
            else:
                kept.append(result)
                positions.append(record.position)
        return kept, positions, rejected

    # --- writing --------------------------------------------------------------------------------

    def _lane(self, partition: str) -> _Lane:
        lane = self._lanes.get(partition)
        if lane is None:
            lane = _Lane(asyncio.Queue(), [])
            for number in range(self._config.partition_concurrency):
                lane.workers.append(
                    asyncio.create_task(self._lane_worker(lane), name=f"pipeline-{partition}-{number}")
                )
            lane.running = len(lane.workers)
            self._lanes[partition] = lane
        return lane

    def _end_lane(self, partition: str) -> None:
        """The partition ended: its lane's workers end once its queued work is done.

        Work of the partition arriving later (its lease taken back and the shard read again
        to its end) gets a lane of its own.
        """
        lane = self._lanes.pop(partition, None)
        if lane is None:
            return
        self._ending_lanes.add(lane)
        for _ in lane.workers:
            lane.queue.put_nowait(None)

    async def _lane_worker(self, lane: _Lane) -> None:
        while True:
            work = await lane.queue.get()
            try:
                if work is None:
                    lane.running -= 1
                    if not lane.running:
                        self._ending_lanes.discard(lane)
                    return
                await self._process(work)
            finally:
                lane.queue.task_done()

    async def _process(self, work: _Work) -> None:
        ticket = work.ticket
        resolved = [False] * len(work.records)
        try:
            if not self._workflow.abort.is_set() and self._current(work):
                if work.rejected:
                    await self._workflow.dead_letter(work.rejected, work.dimensions)
                if work.records:
                    written = await self._workflow.write(
                        work.records, work.positions, resolved, work.dimensions
                    )
                    if written:
                        self._observer.on_event(events.RECORDS_OUT, written, **work.dimensions)
                if self._current(work) and self._tracker.finish(ticket):
                    progress = self._tracker.progress(ticket.partition)
                    if progress is not None and progress.ended:
                        self._checkpoint_now.set()
        except BaseException as caught:  # noqa: BLE001 - SinkError, a bug, an exit: run() raises it
            # the pipeline cancelling its lanes (run() ending) is raised again; a CancelledError
            # nobody sent ends this lane as surely as a bug: left to end the task, it left the
            # lane's queue unjoined and run() waiting for ever
            exc = stray_cancel(caught, "a partition lane")
            prefix = _leading(resolved)
            if prefix and self._current(work):
                # the records before the first unresolved one are acknowledged: a restart (or
                # Lambda's retry) resumes exactly at the record that failed
                self._tracker.acknowledge_prefix(ticket, prefix, work.positions[prefix - 1])
            logger.error(
                "records could not be written",
                extra={
                    "partition": ticket.partition,
                    "sink": sink_name(self._sink),
                    "error_type": type(exc).__name__,
                    "first_unwritten": (
                        work.positions[prefix].identity if prefix < len(work.positions) else None
                    ),
                },
            )
            await self._fail(exc, "a partition lane failed")
        finally:
            await self._release(ticket.record_count)

    # --- draining -------------------------------------------------------------------------------

    async def _drain(self) -> None:
        joins = [lane.queue.join() for lane in (*self._lanes.values(), *self._ending_lanes)]
        if not joins:
            return
        timeout = self._config.drain_timeout if self._stopping.is_set() else None
        try:
            await asyncio.wait_for(asyncio.gather(*joins), timeout)
        except TimeoutError:
            logger.warning(
                "drain timed out; unfinished records will be redelivered",
                extra={"unfinished_records": self._tracker.unfinished_records},
            )

    async def _cancel_lanes(self) -> None:
        workers = [worker for lane in (*self._lanes.values(), *self._ending_lanes) for worker in lane.workers]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._lanes.clear()
        self._ending_lanes.clear()

    # --- checkpointing --------------------------------------------------------------------------

    async def _checkpoint_loop(self) -> None:
        # ended by a flag, not by cancellation: on Python 3.11 a cancel that races the
        # completion of ``asyncio.wait_for`` can be swallowed
        try:
            while not self._checkpointer_done:
                waiter = asyncio.ensure_future(self._checkpoint_now.wait())
                try:
                    await asyncio.wait({waiter}, timeout=self._config.checkpoint_interval)
                finally:
                    waiter.cancel()
                self._checkpoint_now.clear()
                if self._checkpointer_done:
                    return
                await self._checkpoint_pass()
        except asyncio.CancelledError as exc:
            # one nobody sent (a requested one is raised again): silent, it ended the periodic
            # checkpoints for the whole run
            await self._fail(stray_cancel(exc, "the checkpoint loop"), "the checkpoint loop failed")
        except Exception as exc:  # noqa: BLE001 - a pass handles store errors; this is a bug: run() raises it
            await self._fail(exc, "the checkpoint loop failed")

    async def _final_checkpoint(self) -> None:
        """The shutdown pass; a bug in it becomes the run's failure instead of skipping the
        source's close (what was checkpointed before it stands)."""
        try:
            await self._checkpoint_pass()
        except Exception as exc:  # noqa: BLE001 - raised by run() after the source is closed
            if self._failure is None:
                self._failure = exc
                logger.error("the last checkpoint failed", extra={"error_type": type(exc).__name__})
        except asyncio.CancelledError as exc:
            failure = stray_cancel(exc, "the last checkpoint")  # a requested one is raised again
            if self._failure is None:
                self._failure = failure
                logger.error("the last checkpoint failed", extra={"error_type": type(exc).__name__})

    async def _checkpoint_pass(self) -> None:
        """Checkpoint every partition up to its watermark; SHARD_END for finished closed ones.

        Retriable store and service errors are retried by the next pass, for at most
        ``checkpoint_outage_limit``; a non-retriable one stops the run with it; anything
        outside the Shardline tree is a bug and propagates to the loop's owner, which stops
        the run with it.
        """
        async with self._checkpoint_lock:
            for partition in self._tracker.partitions():
                await self._checkpoint_partition(partition)

    async def _checkpoint_partition(self, partition: str) -> None:
        if partition in self._lost or partition in self._ended:
            return
        progress = self._tracker.progress(partition)
        if progress is None:
            return
        position = progress.committable
        hold = self._holds.get(partition)
        try:
            if progress.ended:
                await self._source.checkpoint_end(partition)
                if self._holds.get(partition) != hold:
                    return  # a new hold began meanwhile: its bookkeeping is not this one's
                self._checkpoint_failing_since.pop(partition, None)
                self._ended.add(partition)
                self.stats.partitions_ended += 1
                self._count_checkpoint(partition)
                self._tracker.forget(partition)
                self._observer.on_event(events.CHECKPOINT_LAG, 0, **self._partition_dimensions(partition))
                # only its name stays (in _ended): a backfill ends a partition per archive object
                self._checkpointed.pop(partition, None)
                self._dimensions.pop(partition, None)
                self._holds.pop(partition, None)
                return
            if position is not None and self._checkpointed.get(partition) != position:
                persisted = await self._source.checkpoint(partition, position)
                if self._holds.get(partition) != hold:
                    return
                self._checkpoint_failing_since.pop(partition, None)
                # a position the source let go (a revoked partition) is no checkpoint, and is
                # asked for again next pass: remembered as written, it was never stored once
                # the group assigned the partition back and it was read again up to the same
                # offset, so nothing was committed for it.  A source written before the
                # contract returned anything (None) still counts its own.
                if persisted is not False:
                    self._checkpointed[partition] = position
                    self._tracker.mark_committed(partition)
                    self._count_checkpoint(partition)
        except LeaseLostError:
            if self._holds.get(partition) != hold:
                return  # the hold refused was already given up for a new one
            logger.warning(
                "lease lost; the partition will not be checkpointed again", extra={"partition": partition}
            )
            self._lost.add(partition)  # counted by the source where it learnt of the loss
            return
        except ShardlineError as exc:  # a store or service error
            if self._holds.get(partition) != hold:
                return  # about the hold given up meanwhile; the new one is checkpointed next pass
            self._observer.on_event(events.CHECKPOINT_ERRORS, 1, **self._partition_dimensions(partition))
            await self._checkpoint_failed(partition, exc)
        self._observer.on_event(
            events.CHECKPOINT_LAG,
            progress.uncommitted_records + progress.unfinished_records,
            **self._partition_dimensions(partition),
        )

    async def _checkpoint_failed(self, partition: str, exc: ShardlineError) -> None:
        """Retry a retriable failure at the next pass, within ``checkpoint_outage_limit``;
        stop the run on any other (the store can never take this worker's checkpoints: read
        on, it would write records for hours that every restart delivers again)."""
        extra = {"partition": partition, "error_type": type(exc).__name__}
        if not exc.retriable:
            await self._fail(exc, "the checkpoint store refused for good")
            return
        now = asyncio.get_running_loop().time()
        failing_for = now - self._checkpoint_failing_since.setdefault(partition, now)
        if failing_for < self._config.checkpoint_outage_limit:
            logger.warning("checkpoint failed; will retry", extra=extra)
            return
        failure = CheckpointError(
            f"checkpoints of {partition!r} failed for {failing_for:.0f} s ({type(exc).__name__}): "
            "another worker may take the lease by now, so this one stops"
        )
        failure.__cause__ = exc
        await self._fail(failure, "checkpoints kept failing")

    def _count_checkpoint(self, partition: str) -> None:
        """A checkpoint the store accepted (progress lines report its age, not a pass's)."""
        self.stats.checkpoints += 1
        self._observer.on_event(events.CHECKPOINTS_WRITTEN, 1, **self._partition_dimensions(partition))


class _PastDeadline(Exception):
    """The run's deadline passed before a chunk's records were all transformed."""


async def _until(awaitable: Awaitable[_T], deadline: float) -> _T:
    """``awaitable``'s result, or :class:`_PastDeadline` once the loop's clock reaches ``deadline``.

    A transform awaiting a lookup that never answers held the Lambda handler until its last
    resort, which lists every record of the event, the ones already written too: each retry
    of the batch then wrote the same records again and stopped at the same one.  A transform
    still running at the deadline is cancelled and not waited for (it may ignore the cancel).
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - asyncio.get_running_loop().time()))
    finally:
        if not task.done():
            task.cancel()
            task.add_done_callback(_retrieve)
    if not done:
        raise _PastDeadline
    return task.result()


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Take an abandoned transform's outcome, so that it is not reported as never retrieved."""
    if not task.cancelled():
        task.exception()


def _leading(resolved: Sequence[bool]) -> int:
    """How many leading records are resolved."""
    count = 0
    for done in resolved:
        if not done:
            break
        count += 1
    return count


async def run_until_signal(
    pipeline: Pipeline,
    *,
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
    started: Callable[[], object] | None = None,
) -> int:
    """Run ``pipeline`` until it ends or a signal arrives; drain, checkpoint, return 0.

    The first signal starts a graceful stop (stop reading, drain in-flight writes,
    checkpoint).  Returns the process exit status: 0 on a clean stop, 1 when the pipeline
    failed (the error is logged, its records stay redeliverable).

    ``started`` is called once the handlers are in place, before reading begins: announce the
    start there.  Announced before (``consume`` logged "consumer starting" first), a SIGTERM
    sent on seeing the line could still meet the default action and kill the process undrained.
    """
    loop = asyncio.get_running_loop()
    stop_tasks: list[asyncio.Task[None]] = []

    def on_signal(received: signal.Signals) -> None:
        if stop_tasks:  # a second signal: the person wants out now (nothing past the drain is lost)
            logger.warning("second signal; exiting without draining", extra={"signal": received.name})
            os._exit(130)
        logger.info("signal received; draining", extra={"signal": received.name})
        stop_tasks.append(loop.create_task(pipeline.stop()))

    installed: list[signal.Signals] = []
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
    try:
        if started is not None:
            started()
        await pipeline.run()
    except SinkError as exc:
        logger.error("pipeline stopped on a sink failure", extra={"error_type": type(exc).__name__})
        return 1
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        if stop_tasks:
            await asyncio.gather(*stop_tasks, return_exceptions=True)
    return 0
