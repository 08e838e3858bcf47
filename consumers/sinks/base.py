"""The contract between the pipeline and every sink, and the workflow every sink shares.

The pipeline hands a sink a batch of records of one partition (shard or Kafka partition)
and awaits :meth:`Sink.write`.  When ``write`` returns, every record of the batch is
durably written *or* dead-lettered: that is the acknowledgement the pipeline checkpoints
on.  ``write`` raises :class:`shardline.errors.SinkError` when it could do neither; the
pipeline then does not checkpoint past the batch.

Sinks must be idempotent: writing the same record twice leaves the same state as once, so
replays and at-least-once redelivery cause no double effects.

:class:`BatchingSink` owns the workflow (chunk to the API's limits, send, resend only what
failed with back-off, dead-letter what keeps failing or is rejected, acknowledge by
returning).  A concrete sink implements three primitives: :meth:`BatchingSink.encode`,
:meth:`BatchingSink.entry_size` and :meth:`BatchingSink.send`.  Keeping the workflow in one
place means every sink retries, dead-letters and counts the same way, and one contract
suite can check all of them.
"""

from __future__ import annotations

import asyncio
import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, runtime_checkable

from shardline import metrics_events as events
from shardline.errors import ConfigurationError, ShardlineError, SinkError, ValidationError
from shardline.metrics import MetricsObserver, NullObserver
from shardline.records import ConsumedRecord
from shardline.retry import RetryPolicy

__all__ = [
    "BatchingSink",
    "ChunkLimits",
    "DeadLetter",
    "DeadLetterEntry",
    "EntryResult",
    "Outcome",
    "Sink",
    "SinkOptions",
    "SinkStats",
    "plan_chunks",
]


@runtime_checkable
class Sink(Protocol):
    """Idempotent destination of consumed records."""

    async def write(self, batch: Sequence[ConsumedRecord]) -> None:
        """Write (or dead-letter) every record of ``batch``; return only when that is durable."""
        ...

    async def close(self) -> None:
        """Flush anything buffered and release clients."""
        ...


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """A record that could not be written, with why and where it came from."""

    record: ConsumedRecord = field(repr=False)
    reason: str
    error_type: str = ""
    attempts: int = 0
    destination: str = ""


@runtime_checkable
class DeadLetter(Protocol):
    """Where records go that keep failing (poison records, rejected records).

    ``put`` returns only once the entries are durable; the pipeline then treats the records
    as acknowledged so the shard keeps moving.
    """

    async def put(self, entries: Sequence[DeadLetterEntry]) -> None: ...

    async def close(self) -> None: ...


# --- the workflow -----------------------------------------------------------------------------


class Outcome(enum.Enum):
    """What happened to one entry of a send."""

    WRITTEN = "written"
    DUPLICATE = "duplicate"
    """The destination already holds this record (or a newer version of it): success."""
    RETRY = "retry"
    """A transient per-entry failure (internal error): resend it, at most ``max_attempts`` times."""
    THROTTLED = "throttled"
    """Not processed for capacity reasons (UnprocessedItems, throttled): resend with back-off.

    Not counted against ``max_attempts``: a busy destination is not the record's fault, so
    it is treated like an outage (bounded only by ``outage_timeout``) and never dead-lettered.
    """
    REJECTED = "rejected"
    """The destination will never accept this entry: dead-letter it."""


@dataclass(frozen=True, slots=True)
class EntryResult:
    """The outcome of one entry, with the destination's reason when it failed."""

    outcome: Outcome
    reason: str = ""
    error_type: str = ""

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


_WRITTEN = EntryResult(Outcome.WRITTEN)
_DUPLICATE = EntryResult(Outcome.DUPLICATE)


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


_DEFAULT_RETRY = RetryPolicy(initial_backoff=0.05, max_backoff=5.0, deadline=None)
"""The project's shared full-jitter back-off: 50 ms doubling to at most 5 s."""


@dataclass(frozen=True, slots=True)
class SinkOptions:
    """How a sink retries and gives up.

    ``max_attempts``: sends of one entry that failed *per entry* (throttled, unprocessed,
    retriable rejection) before it is dead-lettered (default 8).
    ``outage_timeout``: seconds a whole call may keep failing with a retriable error (the
    destination is down or throttling everything) before ``write`` raises
    :class:`SinkError`; ``None`` (the default) waits for the destination forever, so the
    pipeline stops reading instead of losing or dead-lettering healthy records.
    ``backoff``: seconds to wait before retry number ``attempt`` (1-based); defaults to
    :class:`shardline.retry.RetryPolicy`'s full-jitter exponential back-off (50 ms doubling
    to 5 s); any ``RetryPolicy(...).backoff`` fits.
    """

    max_attempts: int = 8
    outage_timeout: float | None = None
    backoff: Callable[[int], float] = _DEFAULT_RETRY.backoff

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError("max_attempts must be at least 1")
        if self.outage_timeout is not None and self.outage_timeout < 0:
            raise ConfigurationError("outage_timeout must not be negative")


@dataclass(slots=True)
class SinkStats:
    """Running counts of what a sink did; read by replay summaries and tests."""

    written: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retried: int = 0
    calls: int = 0


EntryT = TypeVar("EntryT")


class _Outage:
    """Tracks how long every send of a chunk has failed for capacity or availability reasons."""

    def __init__(self, timeout: float | None, sink: str) -> None:
        self.timeout = timeout
        self.sink = sink
        self.started: float | None = None
        self.attempt = 0

    def check(self, error: ShardlineError | None) -> None:
        """Count one more failed round; raise ``SinkError`` once the outage lasted too long."""
        now = time.monotonic()
        if self.started is None:
            self.started = now
        if self.timeout is not None and now - self.started >= self.timeout:
            cause = type(error).__name__ if error is not None else "throttled"
            raise SinkError(f"{self.sink} sink unavailable for {self.timeout:.0f} s: {cause}") from error
        self.attempt += 1

    def reset(self) -> None:
        self.started, self.attempt = None, 0


@dataclass(slots=True)
class _Pending(Generic[EntryT]):
    record: ConsumedRecord
    entry: EntryT
    attempts: int = 0
    last: EntryResult = field(default=_WRITTEN)


class BatchingSink(ABC, Generic[EntryT]):
    """The shared sink workflow; subclasses implement ``encode``, ``entry_size`` and ``send``.

    ``write`` keeps at most one batch in memory and does not return while the destination
    is unavailable, so a slow or failing destination pauses the pipeline's reading instead
    of growing a buffer.
    """

    name: str = "sink"
    limits: ChunkLimits = ChunkLimits(max_entries=500)

    def __init__(
        self,
        *,
        dead_letter: DeadLetter | None = None,
        options: SinkOptions | None = None,
        observer: MetricsObserver | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.dead_letter = dead_letter
        self.options = options or SinkOptions()
        self.observer: MetricsObserver = observer or NullObserver()
        self.stats = SinkStats()
        self._sleep = sleep
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
        """Send one chunk; return one result per entry, in order.

        Raise a retriable :class:`ShardlineError` when the whole call failed transiently
        (throttled, 5xx, connection lost) and a non-retriable one when no retry can help.
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

    # --- workflow ---------------------------------------------------------------------------

    async def write(self, batch: Sequence[ConsumedRecord]) -> None:
        if self._closed:
            raise SinkError(f"{self.name} sink is closed")
        if not batch:
            return
        pending: list[_Pending[EntryT]] = []
        poison: list[DeadLetterEntry] = []
        max_entry = self.limits.max_entry_bytes
        for record in batch:
            try:
                entry = self.encode(record)
            except ValidationError as exc:
                poison.append(self._dead(record, str(exc), type(exc).__name__, 0))
                continue
            if max_entry is not None and self.entry_size(entry) > max_entry:
                poison.append(
                    self._dead(
                        record,
                        f"entry of {self.entry_size(entry)} bytes exceeds the {max_entry}-byte limit",
                        "RecordTooLargeError",
                        0,
                    )
                )
                continue
            pending.append(_Pending(record, entry))
        if poison:
            await self._dead_letter(poison)
        sizes = [self.entry_size(item.entry) for item in pending]
        keys = [self.entry_key(item.entry) for item in pending]
        counts = [self.entry_count(item.entry) for item in pending]
        for chunk in plan_chunks(sizes, self.limits, keys, counts):
            await self._write_chunk([pending[index] for index in chunk])

    async def _write_chunk(self, chunk: list[_Pending[EntryT]]) -> None:
        failed: list[DeadLetterEntry] = []
        outage = _Outage(self.options.outage_timeout, self.name)
        retry_round = 0
        while chunk:
            self.stats.calls += 1
            try:
                results = await self.send([item.entry for item in chunk])
            except ShardlineError as exc:
                if not exc.retriable:
                    raise SinkError(f"{self.name} sink failed: {type(exc).__name__}: {exc}") from exc
                outage.check(exc)
                self.observer.on_event(
                    events.SINK_CALL_RETRIED, 1.0, sink=self.name, error=type(exc).__name__
                )
                await self._sleep(self.options.backoff(outage.attempt))
                continue
            if len(results) != len(chunk):
                raise SinkError(f"{self.name} sink returned {len(results)} results for {len(chunk)} entries")
            retry: list[_Pending[EntryT]] = []
            throttled = 0
            for item, result in zip(chunk, results, strict=True):
                item.last = result
                if result.outcome is Outcome.WRITTEN:
                    self.stats.written += 1
                elif result.outcome is Outcome.DUPLICATE:
                    self.stats.duplicates += 1
                elif result.outcome is Outcome.THROTTLED:
                    throttled += 1
                    retry.append(item)
                elif result.outcome is Outcome.RETRY and item.attempts + 1 < self.options.max_attempts:
                    item.attempts += 1
                    retry.append(item)
                else:
                    item.attempts += 1
                    failed.append(self._dead(item.record, result.reason, result.error_type, item.attempts))
            self._report(results)
            if throttled and throttled == len(results):
                outage.check(None)
                delay = self.options.backoff(outage.attempt)
            elif retry:
                outage.reset()
                retry_round += 1
                delay = self.options.backoff(retry_round)
            if retry:
                self.stats.retried += len(retry)
                await self._sleep(delay)
            chunk = retry
        if failed:
            await self._dead_letter(failed)

    def _report(self, results: Sequence[EntryResult]) -> None:
        counts: dict[Outcome, int] = {}
        for result in results:
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        for outcome, count in counts.items():
            self.observer.on_event(events.sink_records(outcome.value), float(count), sink=self.name)

    def _dead(self, record: ConsumedRecord, reason: str, error_type: str, attempts: int) -> DeadLetterEntry:
        return DeadLetterEntry(
            record=record, reason=reason, error_type=error_type, attempts=attempts, destination=self.name
        )

    async def _dead_letter(self, entries: list[DeadLetterEntry]) -> None:
        if self.dead_letter is None:
            raise SinkError(
                f"{self.name} sink could not write {len(entries)} record(s) and has no dead-letter "
                f"destination (first reason: {entries[0].reason})"
            )
        try:
            await self.dead_letter.put(entries)
        except ShardlineError as exc:
            raise SinkError(f"dead-letter destination failed: {type(exc).__name__}: {exc}") from exc
        self.stats.dead_lettered += len(entries)
        self.observer.on_event(events.SINK_RECORDS_DEAD_LETTERED, float(len(entries)), sink=self.name)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.release()
