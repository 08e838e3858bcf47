"""The contract between the pipeline and every sink.

The pipeline hands a sink a batch of records of one partition (shard or Kafka partition)
and awaits :meth:`Sink.write`, which tries every record *once* and answers one
:class:`EntryResult` per record, in order: written, duplicate (the destination already
holds it), a retriable failure (transient, or throttled), or a permanent rejection.  What
happens next is the pipeline's job alone (:mod:`consumers.pipeline`): it resends only the
records that failed retriably, with back-off and within its outage bound, bisects a batch
whose call failed as a whole, dead-letters rejected records with their position, and
checkpoints only what is resolved.  A sink never sleeps, never retries and never
dead-letters; keeping the workflow in one place means replay, the long-running consumer,
Lambda and the KCL adapter all retry, dead-letter and count the same way.

Sinks must be idempotent: writing the same record twice leaves the same state as once, so
replays and at-least-once redelivery cause no double effects.

:class:`BatchingSink` holds what every concrete sink shares: encode each record, refuse
records the API can never take, chunk to the API's limits, send each chunk once and map the
answers back to records.  A concrete sink implements :meth:`BatchingSink.encode`,
:meth:`BatchingSink.entry_size` and :meth:`BatchingSink.send`.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, runtime_checkable

from shardline import metrics_events as events
from shardline.errors import ConfigurationError, ShardlineError, SinkError, ValidationError
from shardline.metrics import MetricsObserver, guard_observer
from shardline.records import ConsumedRecord, Position

__all__ = [
    "BatchingSink",
    "ChunkLimits",
    "DeadLetter",
    "DeadLetterEntry",
    "EntryResult",
    "Outcome",
    "Sink",
    "SinkStats",
    "plan_chunks",
]


@runtime_checkable
class Sink(Protocol):
    """Idempotent destination of consumed records."""

    async def write(self, batch: Sequence[ConsumedRecord]) -> Sequence[EntryResult] | None:
        """Try every record of ``batch`` once; return one result per record, in order.

        ``None`` means every record was written (a simple sink need not build results);
        any other answer stops the run with :class:`~shardline.errors.SinkError`.
        Raising means the whole call failed: a retriable :class:`ShardlineError` is an
        outage the pipeline waits out; :class:`SinkError` (the sink cannot go on) and errors
        saying the destination cannot be written (access denied, not found) stop the run;
        any other error is bisected to find the record at fault.  Never sleeps, retries or
        dead-letters: the pipeline does that.
        """
        ...

    async def close(self) -> None:
        """Flush anything buffered and release clients."""
        ...


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """A record that could not be written, with why and where it came from.

    ``reason`` may quote the destination's answer or the transform's error, so it lives
    only in the dead-letter destination, never in logs.  ``position`` is where the record
    was read (a transform may hand back a changed record); ``None`` means the record's own.
    """

    record: ConsumedRecord = field(repr=False)
    reason: str = field(repr=False)
    error_type: str = ""
    attempts: int = 0
    destination: str = ""
    position: Position | None = None

    @property
    def source_position(self) -> Position:
        """Where the record was read."""
        return self.position if self.position is not None else self.record.position


@runtime_checkable
class DeadLetter(Protocol):
    """Where records go that cannot be written (poison records, rejected records).

    ``put`` returns only once the entries are durable; the pipeline then treats the records
    as acknowledged so the shard keeps moving.
    """

    async def put(self, entries: Sequence[DeadLetterEntry]) -> None: ...

    async def close(self) -> None: ...


class Outcome(enum.Enum):
    """What happened to one record of a write."""

    WRITTEN = "written"
    DUPLICATE = "duplicate"
    """The destination already holds this record (or a newer version of it): success."""
    RETRY = "retry"
    """A transient failure of this entry (internal error): resend it, a bounded number of
    times (``PipelineConfig.entry_attempts``), then dead-letter it."""
    THROTTLED = "throttled"
    """Not processed for capacity reasons (UnprocessedItems, throttled): resend with back-off.

    Never counted against the record: a busy destination is not the record's fault, so it is
    waited out like an outage and never dead-lettered.
    """
    UNAVAILABLE = "unavailable"
    """The call carrying this record failed as a whole with a retriable error (or was not
    made because an earlier call of the same write failed so): an outage, waited out."""
    CALL_FAILED = "call_failed"
    """The call carrying this record failed as a whole with a non-retriable error: one of
    its records is at fault, the pipeline bisects to find it."""
    REJECTED = "rejected"
    """The destination will never accept this entry: dead-letter it."""
    UNSENT = "unsent"
    """Not sent: an earlier chunk of the same write has records still to resend, and a later
    record must not overtake an earlier one of the same key.  Sent again, not counted."""


_RESOLVED = frozenset({Outcome.WRITTEN, Outcome.DUPLICATE})


@dataclass(frozen=True, slots=True)
class EntryResult:
    """The outcome of one record, with the destination's reason when it failed.

    ``reason`` may quote the destination; it goes to the dead-letter entry only.  ``error``
    is the exception of a whole-call failure (``UNAVAILABLE`` / ``CALL_FAILED``).
    """

    outcome: Outcome
    reason: str = field(default="", repr=False)
    error_type: str = ""
    error: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def resolved(self) -> bool:
        """Written or already there: nothing left to do for this record."""
        return self.outcome in _RESOLVED

    @classmethod
    def written(cls) -> EntryResult:
        return _WRITTEN

    @classmethod
    def duplicate(cls) -> EntryResult:
        return _DUPLICATE

    @classmethod
    def retry(cls, reason: str, error_type: str = "") -> EntryResult:
        return cls(Outcome.RETRY, reason, error_type)

    @classmethod
    def throttled(cls, reason: str, error_type: str = "") -> EntryResult:
        return cls(Outcome.THROTTLED, reason, error_type)

    @classmethod
    def rejected(cls, reason: str, error_type: str = "") -> EntryResult:
        return cls(Outcome.REJECTED, reason, error_type)

    @classmethod
    def call_error(cls, error: BaseException) -> EntryResult:
        """The result of every record of a call that raised ``error`` as a whole."""
        retriable = isinstance(error, ShardlineError) and error.retriable
        return cls(
            Outcome.UNAVAILABLE if retriable else Outcome.CALL_FAILED,
            str(error),
            type(error).__name__,
            error,
        )


_WRITTEN = EntryResult(Outcome.WRITTEN)
_DUPLICATE = EntryResult(Outcome.DUPLICATE)
_UNSENT = EntryResult(Outcome.UNSENT)
_FINAL = frozenset({Outcome.WRITTEN, Outcome.DUPLICATE, Outcome.REJECTED})


@dataclass(frozen=True, slots=True)
class ChunkLimits:
    """An API's request limits: entries per call, bytes per call, bytes per entry.

    ``None`` means the API has no such limit.  Values come from :mod:`shardline.limits`.
    ``max_entries`` counts API entries: a record that encodes to several (Timestream
    single-measure records) counts as :meth:`BatchingSink.entry_count` of them.
    """

    max_entries: int
    max_bytes: int | None = None
    max_entry_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.max_entries < 1:
            raise ConfigurationError("max_entries must be at least 1")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise ConfigurationError("max_bytes must be at least 1")
        if self.max_entry_bytes is not None and self.max_entry_bytes < 1:
            raise ConfigurationError("max_entry_bytes must be at least 1")


def plan_chunks(
    sizes: Sequence[int],
    limits: ChunkLimits,
    keys: Sequence[Hashable | None] | None = None,
    counts: Sequence[int] | None = None,
) -> list[list[int]]:
    """Split entry indexes into consecutive chunks that respect ``limits``.

    Pure (no I/O) so it is tested on its own.  Order is kept.  A chunk is also closed when
    an entry's ``key`` already occurs in it, because some APIs (BatchWriteItem) refuse two
    writes to the same item in one call.  Entries larger than ``max_entry_bytes`` must be
    filtered out before; an entry larger than ``max_bytes`` gets a chunk of its own.
    """
    chunks: list[list[int]] = []
    current: list[int] = []
    current_bytes = 0
    current_count = 0
    current_keys: set[Hashable] = set()
    for index, size in enumerate(sizes):
        key = keys[index] if keys is not None else None
        count = counts[index] if counts is not None else 1
        full = current_count + count > limits.max_entries
        too_big = limits.max_bytes is not None and current_bytes + size > limits.max_bytes
        clash = key is not None and key in current_keys
        if current and (full or too_big or clash):
            chunks.append(current)
            current, current_bytes, current_count, current_keys = [], 0, 0, set()
        current.append(index)
        current_bytes += size
        current_count += count
        if key is not None:
            current_keys.add(key)
    if current:
        chunks.append(current)
    return chunks


@dataclass(slots=True)
class SinkStats:
    """Running counts of what a sink did; read by tests and summaries."""

    written: int = 0
    duplicates: int = 0
    calls: int = 0
    failed_calls: int = 0


EntryT = TypeVar("EntryT")


class BatchingSink(ABC, Generic[EntryT]):
    """What every concrete sink shares; subclasses implement ``encode``, ``entry_size``, ``send``.

    ``write`` encodes the batch, answers ``REJECTED`` for records the API can never take
    (encoding refused them, or they exceed the entry size limit), chunks the rest to the
    API's limits, sends each chunk once and maps the answers back to records.  Once a chunk
    has records left to resend (throttled, failed, or its call failed as a whole) the later
    chunks are not sent (``UNSENT``): the pipeline resends in order, so a later record never
    overtakes an earlier one of the same key.
    """

    name: str = "sink"
    limits: ChunkLimits = ChunkLimits(max_entries=500)

    def __init__(self, *, observer: MetricsObserver | None = None) -> None:
        self.observer: MetricsObserver = guard_observer(observer)
        self.stats = SinkStats()
        self._closed = False

    # --- primitives -------------------------------------------------------------------------

    @abstractmethod
    def encode(self, record: ConsumedRecord) -> EntryT:
        """Turn a record into the API's entry; raise ``ValidationError`` for a poison record."""

    @abstractmethod
    def entry_size(self, entry: EntryT) -> int:
        """Bytes the entry counts for against the API's request and entry size limits."""

    @abstractmethod
    async def send(self, entries: Sequence[EntryT]) -> Sequence[EntryResult]:
        """Send one chunk once; return one result per entry, in order.

        Raise a retriable :class:`ShardlineError` when the whole call failed transiently
        (throttled, 5xx, connection lost) and a non-retriable one when no retry can help.
        Results' reasons must not copy response bodies that may echo the payload.
        """

    def entry_count(self, entry: EntryT) -> int:
        """API entries this entry stands for, counted against ``limits.max_entries``."""
        return 1

    def entry_key(self, entry: EntryT) -> Hashable | None:
        """Key that may occur only once per call (``None``: no such constraint)."""
        return None

    async def release(self) -> None:
        """Release clients the sink created itself."""
        return None

    # --- one attempt ------------------------------------------------------------------------

    async def write(self, batch: Sequence[ConsumedRecord]) -> list[EntryResult]:
        if self._closed:
            raise SinkError(f"{self.name} sink is closed")
        results: list[EntryResult | None] = [None] * len(batch)
        indexes: list[int] = []
        entries: list[EntryT] = []
        max_entry = self.limits.max_entry_bytes
        for index, record in enumerate(batch):
            try:
                entry = self.encode(record)
            except ValidationError as exc:
                results[index] = EntryResult.rejected(str(exc), type(exc).__name__)
                continue
            size = self.entry_size(entry)
            if max_entry is not None and size > max_entry:
                results[index] = EntryResult.rejected(
                    f"entry of {size} bytes exceeds the {max_entry}-byte limit", "RecordTooLargeError"
                )
                continue
            indexes.append(index)
            entries.append(entry)
        sizes = [self.entry_size(entry) for entry in entries]
        keys = [self.entry_key(entry) for entry in entries]
        counts = [self.entry_count(entry) for entry in entries]
        held = False
        for chunk in plan_chunks(sizes, self.limits, keys, counts):
            if held:
                for position in chunk:
                    results[indexes[position]] = _UNSENT
                continue
            answers = await self._send_once([entries[position] for position in chunk])
            for position, answer in zip(chunk, answers, strict=True):
                results[indexes[position]] = answer
            held = any(answer.outcome not in _FINAL for answer in answers)
        final = [result if result is not None else EntryResult.written() for result in results]
        self._report(final)
        return final

    async def _send_once(self, chunk: Sequence[EntryT]) -> list[EntryResult]:
        self.stats.calls += 1
        try:
            answers = list(await self.send(chunk))
        except ShardlineError as exc:
            self.stats.failed_calls += 1
            return [EntryResult.call_error(exc)] * len(chunk)
        if len(answers) != len(chunk):
            raise SinkError(f"{self.name} sink returned {len(answers)} results for {len(chunk)} entries")
        for answer in answers:
            if answer.outcome is Outcome.WRITTEN:
                self.stats.written += 1
            elif answer.outcome is Outcome.DUPLICATE:
                self.stats.duplicates += 1
        return answers

    def _report(self, results: Sequence[EntryResult]) -> None:
        counts: dict[Outcome, int] = {}
        for result in results:
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        for outcome, count in counts.items():
            self.observer.on_event(events.sink_records(outcome.value), float(count), sink=self.name)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.release()
