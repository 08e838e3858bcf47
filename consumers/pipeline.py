"""The consumer pipeline: source -> transform -> sink -> acknowledge -> checkpoint.

One :class:`Pipeline` moves records from a :class:`~consumers.source.Source` (Kinesis
polling or fan-out, Kafka, a replay job) into a :class:`~consumers.sinks.base.Sink`, and
tells the source how far it may checkpoint.  The guarantees, and how they are kept:

* **At-least-once.**  A partition is checkpointed only up to the lowest record that is not
  yet written or dead-lettered (:class:`~consumers._pipeline_tracker.AckTracker`), at
  ``checkpoint_interval`` and once more on shutdown; a partition whose lease was lost is
  never checkpointed again.
* **Per-partition order.**  Each partition has a lane with ``partition_concurrency``
  writers (1 by default: one sink write in flight per shard, in order).
* **Bounded memory.**  At most ``max_in_flight_records`` records are read but unfinished;
  when the bound is hit the reader stops pulling from the source (a throttled or slow sink
  therefore pauses reading instead of growing buffers).
* **Poison records do not stall a shard.**  A write that still fails after the bounded
  retries is bisected until the failing records are isolated; those go to the dead-letter
  destination with the reason and their position, the rest are written, and the shard moves
  on.  Without a dead-letter destination the pipeline stops with
  :class:`~shardline.errors.SinkError` and checkpoints nothing past the failed batch.
* **Graceful shutdown.**  :meth:`Pipeline.stop` stops reading, drains what was read,
  checkpoints and lets :meth:`Pipeline.run` return; :func:`run_until_signal` wires that to
  SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from consumers._pipeline_tracker import AckTracker, Ticket
from consumers.sinks.base import DeadLetter, DeadLetterEntry, Sink
from consumers.source import Source, SourceBatch
from shardline.errors import ConfigurationError, LeaseLostError, SinkError
from shardline.metrics import MetricsObserver, NullObserver
from shardline.records import ConsumedRecord, Position

__all__ = [
    "Pipeline",
    "PipelineConfig",
    "PipelineStats",
    "Transform",
    "full_jitter_backoff",
    "run_until_signal",
]

logger = logging.getLogger(__name__)

Transform: TypeAlias = Callable[
    [ConsumedRecord], "ConsumedRecord | Awaitable[ConsumedRecord | None] | None"
]
"""User hook: return the record to write (possibly changed), or ``None`` to drop it."""

_REASON_MAX_CHARS = 500


def full_jitter_backoff(attempt: int, *, base: float = 0.1, cap: float = 5.0) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): full-jitter exponential backoff."""
    return random.uniform(0.0, min(cap, base * (2 ** (attempt - 1))))


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """How the pipeline batches, bounds and checkpoints.  Every default is production-safe.

    ``max_in_flight_records``: records read but not yet finished before reading pauses.
    ``partition_concurrency``: sink writes in flight per partition (1 keeps per-shard order).
    ``max_sink_batch_records``: the largest batch handed to ``sink.write`` (source batches are
    split); the sink splits further to its API's own limits.
    ``checkpoint_interval``: seconds between checkpoints; redeliveries after a crash are
    bounded by what one interval reads.
    ``sink_attempts``: tries of one sink write before the batch is bisected to find poison
    records; ``sink_backoff(attempt)`` gives the wait before retry ``attempt``.
    ``drain_timeout``: seconds :meth:`Pipeline.stop` waits for in-flight writes before it
    abandons them (they are redelivered after restart); ``None`` waits as long as needed.
    """

    max_in_flight_records: int = 10_000
    partition_concurrency: int = 1
    max_sink_batch_records: int = 500
    checkpoint_interval: float = 10.0
    sink_attempts: int = 3
    sink_backoff: Callable[[int], float] = field(default=full_jitter_backoff, repr=False)
    drain_timeout: float | None = None

    def __post_init__(self) -> None:
        if self.max_in_flight_records < 1:
            raise ConfigurationError("max_in_flight_records must be at least 1")
        if self.partition_concurrency < 1:
            raise ConfigurationError("partition_concurrency must be at least 1")
        if self.max_sink_batch_records < 1:
            raise ConfigurationError("max_sink_batch_records must be at least 1")
        if not self.checkpoint_interval > 0:
            raise ConfigurationError("checkpoint_interval must be a positive number of seconds")
        if self.sink_attempts < 1:
            raise ConfigurationError("sink_attempts must be at least 1")
        if self.drain_timeout is not None and self.drain_timeout < 0:
            raise ConfigurationError("drain_timeout must be >= 0 or None")


@dataclass(slots=True)
class PipelineStats:
    """Counters of one run, for tests and the CLI's final log line."""

    records_in: int = 0
    records_out: int = 0
    dead_lettered: int = 0
    filtered: int = 0
    retries: int = 0
    checkpoints: int = 0
    partitions_ended: int = 0
    partitions_lost: int = 0


@dataclass(slots=True, eq=False)
class _Work:
    ticket: Ticket
    records: Sequence[ConsumedRecord]
    rejected: list[DeadLetterEntry]


@dataclass(slots=True, eq=False)
class _Lane:
    queue: asyncio.Queue[_Work | None]
    workers: list[asyncio.Task[None]]


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
    ) -> None:
        self._source = source
        self._sink = sink
        self._config = config if config is not None else PipelineConfig()
        self._dead_letter = dead_letter
        self._transform = transform
        self._observer: MetricsObserver = observer if observer is not None else NullObserver()
        self.stats = PipelineStats()
        self._tracker = AckTracker()
        self._lanes: dict[str, _Lane] = {}
        self._in_flight = 0
        self._capacity = asyncio.Condition()
        self._checkpointed: dict[str, Position] = {}
        self._lost: set[str] = set()
        self._ended: set[str] = set()
        self._checkpoint_lock = asyncio.Lock()
        self._checkpoint_now = asyncio.Event()
        self._checkpointer_done = False
        self._stopping = asyncio.Event()
        self._failure: BaseException | None = None
        self._running = False

    def __repr__(self) -> str:
        return f"Pipeline(source={self._source!r}, sink={self._sink!r}, config={self._config!r})"

    @property
    def config(self) -> PipelineConfig:
        return self._config

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> PipelineStats:
        """Consume until the source ends or :meth:`stop`; drain, checkpoint, return the stats.

        Raises :class:`SinkError` when records could neither be written nor dead-lettered
        (after draining the other partitions and checkpointing what was finished).
        """
        if self._running:
            raise ConfigurationError("a pipeline runs once at a time")
        self._running = True
        self._checkpointer_done = False
        checkpointer = asyncio.create_task(self._checkpoint_loop(), name="pipeline-checkpointer")
        try:
            if not self._stopping.is_set():
                await self._read()
            await self._drain()
        finally:
            self._checkpointer_done = True
            self._checkpoint_now.set()
            await asyncio.gather(checkpointer, return_exceptions=True)
            await self._cancel_lanes()
            await self._checkpoint_pass()
            self._running = False
        if self._failure is not None:
            raise self._failure
        return self.stats

    async def stop(self) -> None:
        """Stop reading; :meth:`run` drains what was read, checkpoints and returns."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        async with self._capacity:
            self._capacity.notify_all()
        await self._source.stop()

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

    async def _accept(self, batch: SourceBatch) -> bool:
        """Hand ``batch`` to its partition's lane; ``False`` when stopping cut it short."""
        partition = batch.partition
        count = len(batch.records)
        self.stats.records_in += count
        if count:
            self._observer.on_event("records_in", count, partition=partition)
        if batch.millis_behind_latest is not None:
            self._observer.on_event("iterator_age_ms", batch.millis_behind_latest, partition=partition)
        if partition in self._lost:
            return True  # the lease is gone; the new owner reads these records again
        size = self._config.max_sink_batch_records
        chunks = [batch.records[start : start + size] for start in range(0, count, size)]
        if batch.end_of_partition or not chunks:
            chunks.append([])
        for index, chunk in enumerate(chunks):
            if not await self._reserve(len(chunk)):
                # stopping while the bound is hit: these records are never issued, so no
                # checkpoint can pass them and they are read again after restart
                return False
            kept, rejected = await self._apply_transform(chunk)
            last_position = chunk[-1].position if chunk else None
            end = batch.end_of_partition and index == len(chunks) - 1
            ticket = self._tracker.issue(partition, len(chunk), last_position, end_of_partition=end)
            await self._lane(partition).queue.put(_Work(ticket, kept, rejected))
        return True

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
    ) -> tuple[Sequence[ConsumedRecord], list[DeadLetterEntry]]:
        if self._transform is None:
            return records, []
        kept: list[ConsumedRecord] = []
        rejected: list[DeadLetterEntry] = []
        for record in records:
            try:
                result = self._transform(record)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:  # noqa: BLE001 - a user bug in one record must not stall the shard
                rejected.append(_dead_letter_entry(record, "transform failed", exc, attempts=1))
                continue
            if result is None:
                self.stats.filtered += 1
            else:
                kept.append(result)
        return kept, rejected

    # --- writing --------------------------------------------------------------------------------

    def _lane(self, partition: str) -> _Lane:
        lane = self._lanes.get(partition)
        if lane is None:
            lane = _Lane(asyncio.Queue(), [])
            for number in range(self._config.partition_concurrency):
                lane.workers.append(
                    asyncio.create_task(self._lane_worker(lane), name=f"pipeline-{partition}-{number}")
                )
            self._lanes[partition] = lane
        return lane

    async def _lane_worker(self, lane: _Lane) -> None:
        while True:
            work = await lane.queue.get()
            try:
                if work is None:
                    return
                await self._process(work)
            finally:
                lane.queue.task_done()

    async def _process(self, work: _Work) -> None:
        ticket = work.ticket
        try:
            if self._failure is None and ticket.partition not in self._lost:
                if work.rejected:
                    await self._send_to_dead_letter(work.rejected)
                if work.records:
                    await self._write_isolating(work.records)
                self.stats.records_out += len(work.records)
                if work.records:
                    self._observer.on_event("records_out", len(work.records), partition=ticket.partition)
                if self._tracker.finish(ticket):
                    progress = self._tracker.progress(ticket.partition)
                    if progress is not None and progress.ended:
                        self._checkpoint_now.set()
        except SinkError as exc:
            if self._failure is None:
                self._failure = exc
                logger.error(
                    "sink failed and nothing could be dead-lettered; stopping",
                    extra={"partition": ticket.partition, "error_type": type(exc).__name__},
                )
                await self.stop()
        finally:
            await self._release(ticket.record_count)

    async def _write_isolating(self, records: Sequence[ConsumedRecord]) -> None:
        """Write ``records``; on persistent failure bisect until the poison ones are isolated."""
        try:
            await self._write_with_retries(records)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any sink failure is isolated, never swallowed
            if len(records) == 1:
                entry = _dead_letter_entry(
                    records[0], "sink write failed", exc, attempts=self._config.sink_attempts
                )
                await self._send_to_dead_letter([entry])
                return
            failure = exc
        logger.warning(
            "sink write failed after retries; bisecting the batch",
            extra={"records": len(records), "error_type": type(failure).__name__},
        )
        middle = len(records) // 2
        await self._write_isolating(records[:middle])
        await self._write_isolating(records[middle:])

    async def _write_with_retries(self, records: Sequence[ConsumedRecord]) -> None:
        attempts = self._config.sink_attempts
        for attempt in range(1, attempts + 1):
            try:
                await self._sink.write(records)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                retriable = getattr(exc, "retriable", True)
                if attempt == attempts or not retriable:
                    raise
                self.stats.retries += 1
                self._observer.on_event("retries", 1, error_type=type(exc).__name__)
                await asyncio.sleep(self._config.sink_backoff(attempt))

    async def _send_to_dead_letter(self, entries: list[DeadLetterEntry]) -> None:
        if self._dead_letter is None:
            raise SinkError(f"{len(entries)} record(s) failed and no dead-letter destination is set")
        try:
            await self._dead_letter.put(entries)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise SinkError(f"dead-letter destination failed: {type(exc).__name__}") from exc
        self.stats.dead_lettered += len(entries)
        self._observer.on_event("dead_lettered", len(entries))
        for entry in entries:
            logger.warning(
                "record dead-lettered",
                extra={"position": entry.record.position.identity, "reason": entry.reason},
            )

    # --- draining -------------------------------------------------------------------------------

    async def _drain(self) -> None:
        joins = [lane.queue.join() for lane in self._lanes.values()]
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
        workers = [worker for lane in self._lanes.values() for worker in lane.workers]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._lanes.clear()

    # --- checkpointing --------------------------------------------------------------------------

    async def _checkpoint_loop(self) -> None:
        # ended by a flag, not by cancellation: on Python 3.11 a cancel that races the
        # completion of ``asyncio.wait_for`` can be swallowed
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

    async def _checkpoint_pass(self) -> None:
        """Checkpoint every partition up to its watermark; SHARD_END for finished closed ones."""
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
        try:
            if progress.ended:
                await self._source.checkpoint_end(partition)
                self._ended.add(partition)
                self.stats.partitions_ended += 1
                self.stats.checkpoints += 1
                self._tracker.forget(partition)
                self._observer.on_event("checkpoint_lag", 0, partition=partition)
                return
            if position is not None and self._checkpointed.get(partition) != position:
                await self._source.checkpoint(partition, position)
                self._checkpointed[partition] = position
                self._tracker.mark_committed(partition)
                self.stats.checkpoints += 1
        except LeaseLostError:
            logger.warning("lease lost; the partition will not be checkpointed again", extra={
                "partition": partition
            })
            self._lost.add(partition)
            self.stats.partitions_lost += 1
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - next pass retries; records stay redeliverable
            logger.warning(
                "checkpoint failed; will retry",
                extra={"partition": partition, "error_type": type(exc).__name__},
            )
            self._observer.on_event("checkpoint_errors", 1, partition=partition)
        self._observer.on_event(
            "checkpoint_lag",
            progress.uncommitted_records + progress.unfinished_records,
            partition=partition,
        )


def _dead_letter_entry(
    record: ConsumedRecord, what: str, exc: BaseException, *, attempts: int
) -> DeadLetterEntry:
    message = str(exc)[:_REASON_MAX_CHARS]
    return DeadLetterEntry(
        record=record,
        reason=f"{what}: {message}" if message else what,
        error_type=type(exc).__name__,
        attempts=attempts,
    )


async def run_until_signal(
    pipeline: Pipeline,
    *,
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> int:
    """Run ``pipeline`` until it ends or a signal arrives; drain, checkpoint, return 0.

    The first signal starts a graceful stop (stop reading, drain in-flight writes,
    checkpoint).  Returns the process exit status: 0 on a clean stop, 1 when the pipeline
    failed (the error is logged, its records stay redeliverable).
    """
    loop = asyncio.get_running_loop()
    stop_tasks: list[asyncio.Task[None]] = []

    def on_signal(received: signal.Signals) -> None:
        logger.info("signal received; draining", extra={"signal": received.name})
        stop_tasks.append(loop.create_task(pipeline.stop()))

    installed: list[signal.Signals] = []
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
    try:
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
