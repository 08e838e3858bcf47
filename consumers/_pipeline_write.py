"""The one write workflow: how a batch of records ends written, dead-lettered or failed.

Sinks try each record once and report a per-record outcome
(:class:`~consumers.sinks.base.EntryResult`); everything that depends on time and on
giving up lives here, so the long-running consumer, replay jobs, the Lambda handler and the
KCL adapter behave the same and differ only in their bounds:

* records written or already present are resolved and never sent again;
* a record the destination rejects is dead-lettered at once, with its reason, error type,
  attempts and the position it was read at;
* a record that failed transiently (``RETRY``) is resent, only it, with back-off, up to
  ``PipelineConfig.entry_attempts`` sends, then dead-lettered;
* records throttled, or whose call failed with a retriable error (an outage), are resent
  with back-off for as long as ``PipelineConfig.sink_retry`` allows; they are never
  dead-lettered, and giving up raises :class:`~shardline.errors.SinkError`;
* records whose call failed as a whole with a non-retriable error are bisected until the
  record at fault is alone, which is then dead-lettered;
* every wait and every sink call ends at the run's *deadline* (Lambda: the invocation's
  remaining time) or when the pipeline aborts (:meth:`Pipeline.close` timed out, another
  lane failed), raising :class:`SinkError` with the records still unresolved.

Logs carry the error type, the position and the sink's name, never a reason: reasons may
quote the payload (a transform's error, a server echoing the rejected line) and live only in
the dead-letter entry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from consumers.sinks.base import DeadLetter, DeadLetterEntry, EntryResult, Outcome, Sink
from shardline import metrics_events as events
from shardline.errors import (
    AccessDeniedError,
    AuthenticationError,
    ClosedError,
    ConfigurationError,
    KmsError,
    ResourceNotFoundError,
    ShardlineError,
    SinkError,
    ThrottledError,
    TransientServiceError,
)
from shardline.events_wait import wait_until_set
from shardline.metrics import MetricsObserver
from shardline.records import ConsumedRecord, Position
from shardline.retry import RetryPolicy

__all__ = ["WriteCounts", "WriteWorkflow", "dead_letter_entry", "sink_name"]

logger = logging.getLogger("consumers.pipeline")

REASON_MAX_CHARS = 500

_T = TypeVar("_T")

_NO_DIMENSIONS: Mapping[str, str] = MappingProxyType({})

_DESTINATION_ERRORS = (
    AccessDeniedError,
    AuthenticationError,
    ClosedError,
    ConfigurationError,
    KmsError,
    ResourceNotFoundError,
)
"""Whole-call failures that are the destination's fault, not a record's: the run stops with
nothing dead-lettered instead of bisecting healthy records into the dead letter."""


class StoppedWithRecordsUnwritten(SinkError):
    """The run's deadline passed, or the workflow was aborted, with records unresolved.

    Named for the operator: its class name is what the logs' ``error_type`` shows.
    """


def sink_name(sink: object) -> str:
    """The name logs use for a sink: its ``name`` attribute, else its class name."""
    name = getattr(sink, "name", None)
    return name if isinstance(name, str) and name else type(sink).__name__


def dead_letter_entry(
    record: ConsumedRecord,
    position: Position,
    what: str,
    reason: str,
    error_type: str,
    *,
    attempts: int,
    destination: str = "",
) -> DeadLetterEntry:
    """A dead-letter entry; the reason is kept whole (bounded) here and nowhere else."""
    reason = reason[:REASON_MAX_CHARS]
    return DeadLetterEntry(
        record=record,
        reason=f"{what}: {reason}" if reason else what,
        error_type=error_type,
        attempts=attempts,
        destination=destination,
        position=position,
    )


@dataclass(slots=True)
class WriteCounts:
    """What the workflow resolved; each record is counted once, in one of these."""

    written: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0
    """Rounds in which the records still failing were sent again (not counted per record)."""


@dataclass(slots=True)
class _Outage:
    """Consecutive rounds in which nothing moved (everything throttled or unavailable)."""

    started: float | None = None
    rounds: int = 0
    last: BaseException | None = field(default=None)


class WriteWorkflow:
    """Writes batches through a sink with the pipeline's retry, bisection and dead-letter rules."""

    def __init__(
        self,
        sink: Sink,
        dead_letter: DeadLetter | None,
        *,
        retry: RetryPolicy,
        entry_attempts: int,
        observer: MetricsObserver,
        deadline: float | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        """``sleep`` replaces the back-off wait (tests record the delays instead of waiting);
        the deadline and abort are checked around it."""
        self._sink = sink
        self._sleep = sleep
        self._sink_name = sink_name(sink)
        self._dead_letter = dead_letter
        self._retry = retry
        self._entry_attempts = entry_attempts
        self._observer = observer
        self.deadline = deadline
        """Event-loop time (``loop.time()``) after which nothing more is attempted."""
        self.abort = asyncio.Event()
        """Set to make every wait and sink call of this workflow give up at once."""
        self.counts = WriteCounts()

    # --- public -----------------------------------------------------------------------------

    async def write(
        self,
        records: Sequence[ConsumedRecord],
        positions: Sequence[Position],
        resolved: list[bool],
        dimensions: Mapping[str, str] = _NO_DIMENSIONS,
    ) -> int:
        """Resolve every record (written or dead-lettered); ``resolved[i]`` marks record ``i``.

        Returns how many of ``records`` the sink now holds (written or duplicate).  Raises
        :class:`SinkError` when some record could be neither (outage bound, deadline, abort,
        no or failing dead-letter destination); ``resolved`` then says which were.
        ``dimensions`` (the records' partition and stream or topic) go with ``dead_lettered``.
        """
        held = [0]
        await self._resolve(records, positions, list(range(len(records))), resolved, held, dimensions)
        return held[0]

    async def dead_letter(
        self, entries: Sequence[DeadLetterEntry], dimensions: Mapping[str, str] = _NO_DIMENSIONS
    ) -> None:
        """Put ``entries`` into the dead-letter destination (retrying an unavailable one).

        ``dead_lettered`` is reported with ``dimensions`` and the sink's name, so an operator
        sees which consumer dead-letters into which sink.
        """
        if not entries:
            return
        dead_letter = self._dead_letter
        if dead_letter is None:
            self._log_unresolved(entries, "no dead-letter destination is set")
            raise SinkError(f"{len(entries)} record(s) failed and no dead-letter destination is set")
        outage = _Outage()
        while True:
            try:
                await self._bounded(lambda: dead_letter.put(entries))
                break
            except StoppedWithRecordsUnwritten:
                raise
            except Exception as exc:
                if not (isinstance(exc, ShardlineError) and exc.retriable):
                    self._log_unresolved(entries, "the dead-letter destination failed")
                    raise SinkError(f"dead-letter destination failed: {type(exc).__name__}") from exc
                outage.last = exc
                await self._wait_out(outage)
        self.counts.dead_lettered += len(entries)
        self._observer.on_event(events.DEAD_LETTERED, float(len(entries)), sink=self._sink_name, **dimensions)
        for entry in entries:
            logger.warning(
                "record dead-lettered",
                extra={
                    "position": entry.source_position.identity,
                    "error_type": entry.error_type,
                    "sink": self._sink_name,
                },
            )

    # --- the loop -----------------------------------------------------------------------------

    async def _resolve(
        self,
        records: Sequence[ConsumedRecord],
        positions: Sequence[Position],
        indexes: list[int],
        resolved: list[bool],
        held: list[int],
        dimensions: Mapping[str, str],
    ) -> None:
        attempts = dict.fromkeys(indexes, 0)
        pending = indexes
        outage = _Outage()
        retry_round = 0
        while pending:
            results = await self._call([records[index] for index in pending])
            again: list[int] = []
            dead: list[DeadLetterEntry] = []
            dead_indexes: list[int] = []
            split: list[int] = []
            moved = False
            for index, result in zip(pending, results, strict=True):
                outcome = result.outcome
                if outcome is Outcome.WRITTEN or outcome is Outcome.DUPLICATE:
                    resolved[index] = True
                    held[0] += 1
                    moved = True
                    if outcome is Outcome.WRITTEN:
                        self.counts.written += 1
                    else:
                        self.counts.duplicates += 1
                elif outcome is Outcome.REJECTED or (
                    outcome is Outcome.RETRY and attempts[index] + 1 >= self._entry_attempts
                ):
                    attempts[index] += 1
                    dead.append(self._entry(records[index], positions[index], result, attempts[index]))
                    dead_indexes.append(index)
                    moved = True
                elif outcome is Outcome.RETRY:
                    attempts[index] += 1
                    again.append(index)
                    moved = True
                elif outcome is Outcome.CALL_FAILED:
                    split.append(index)
                    moved = True
                elif outcome is Outcome.UNSENT:
                    again.append(index)
                else:  # THROTTLED, UNAVAILABLE: the destination's state, not the record's fault
                    again.append(index)
                    outage.last = result.error or ThrottledError(
                        f"{self._sink_name} sink throttled", code=result.error_type or "Throttled"
                    )
            if dead:
                await self.dead_letter(dead, dimensions)
                for index in dead_indexes:
                    resolved[index] = True
            if split:
                await self._bisect(records, positions, split, resolved, held, results, pending, dimensions)
            if not again:
                return
            if moved:
                self._count_retry(None)
                outage = _Outage()
                retry_round += 1
                await self._pause(self._retry.backoff(retry_round))
            else:
                await self._wait_out(outage)
            pending = again

    async def _bisect(
        self,
        records: Sequence[ConsumedRecord],
        positions: Sequence[Position],
        split: list[int],
        resolved: list[bool],
        held: list[int],
        results: Sequence[EntryResult],
        pending: list[int],
        dimensions: Mapping[str, str],
    ) -> None:
        if len(split) == 1:
            index = split[0]
            result = results[pending.index(index)]
            await self.dead_letter([self._entry(records[index], positions[index], result, 1)], dimensions)
            resolved[index] = True
            return
        logger.warning(
            "sink call failed; bisecting the batch to isolate the failing records",
            extra={
                "records": len(split),
                "error_type": results[pending.index(split[0])].error_type,
                "sink": self._sink_name,
            },
        )
        middle = len(split) // 2
        await self._resolve(records, positions, split[:middle], resolved, held, dimensions)
        await self._resolve(records, positions, split[middle:], resolved, held, dimensions)

    def _entry(
        self, record: ConsumedRecord, position: Position, result: EntryResult, attempts: int
    ) -> DeadLetterEntry:
        return dead_letter_entry(
            record,
            position,
            "sink write failed",
            result.reason,
            result.error_type or result.outcome.value,
            attempts=attempts,
            destination=self._sink_name,
        )

    # --- one call, waits, bounds --------------------------------------------------------------

    async def _call(self, batch: Sequence[ConsumedRecord]) -> Sequence[EntryResult]:
        """One ``sink.write``: its results, or the whole-call failure as every record's result."""
        try:
            results = await self._bounded(lambda: self._sink.write(batch))
        except SinkError:
            raise  # the sink itself gave up (or the bound was reached): the run stops
        except _DESTINATION_ERRORS as exc:
            raise self._cannot_write(exc) from exc
        except Exception as exc:  # noqa: BLE001 - outside the Shardline tree: bisected as a poison call
            return [EntryResult.call_error(exc)] * len(batch)
        if results is None:
            return [EntryResult.written()] * len(batch)
        # A sink breaking its contract (``return True``, a list of dicts) is the sink's error,
        # typed: a TypeError or AttributeError from deep in the workflow ended the run, and
        # under Lambda failed the invocation, as an untyped crash.
        try:
            count = len(results)
        except TypeError:
            raise SinkError(
                f"{self._sink_name} sink returned a {type(results).__name__}, not one result per record"
            ) from None
        if count != len(batch):
            raise SinkError(f"{self._sink_name} sink returned {count} results for {len(batch)} records")
        call_failed = Outcome.CALL_FAILED  # a local: an enum member looked up per record cost 9x
        for result in results:
            # A BatchingSink reports a call that raised as every record's CALL_FAILED result
            # instead of raising: a destination error, or the sink saying it cannot go on
            # (SinkError: a full disk), must stop the run just the same, or bisection
            # dead-letters every healthy record and the checkpoint moves past them.
            if type(result) is not EntryResult:
                raise SinkError(
                    f"{self._sink_name} sink returned a {type(result).__name__} result, not an EntryResult"
                )
            if result.outcome is not call_failed:
                continue
            if isinstance(result.error, _DESTINATION_ERRORS):
                raise self._cannot_write(result.error) from result.error
            if isinstance(result.error, SinkError):
                self._cannot_write(result.error)
                raise result.error
        return results

    def _cannot_write(self, exc: BaseException) -> SinkError:
        logger.error(
            "sink cannot be written; stopping",
            extra={"error_type": type(exc).__name__, "sink": self._sink_name},
        )
        return SinkError(f"{self._sink_name} sink cannot be written: {type(exc).__name__}")

    async def _wait_out(self, outage: _Outage) -> None:
        """One more round of an outage: back off, or raise once ``sink_retry`` gives up."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if outage.started is None:
            outage.started = now
        outage.rounds += 1
        cause = outage.last if outage.last is not None else ThrottledError("destination unavailable")
        self._count_retry(cause)
        if not self._retry.should_retry(cause, outage.rounds, now - outage.started):
            logger.error(
                "destination still unavailable; giving up",
                extra={
                    "attempts": outage.rounds,
                    "error_type": type(cause).__name__,
                    "sink": self._sink_name,
                },
            )
            raise SinkError(
                f"{self._sink_name} still failing after {outage.rounds} attempts: {type(cause).__name__}"
            ) from cause
        if outage.rounds & (outage.rounds - 1) == 0:  # 1, 2, 4, 8...: visible, not flooding
            logger.warning(
                "destination unavailable; retrying while reading pauses",
                extra={
                    "attempts": outage.rounds,
                    "error_type": type(cause).__name__,
                    "sink": self._sink_name,
                },
            )
        await self._pause(self._retry.backoff(outage.rounds))

    def _count_retry(self, cause: BaseException | None) -> None:
        self.counts.retries += 1
        error_type = type(cause).__name__ if cause is not None else "retry"
        self._observer.on_event(events.RETRIES, 1.0, sink=self._sink_name, error_type=error_type)

    def _remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return self.deadline - asyncio.get_running_loop().time()

    def _bound_error(self) -> SinkError:
        remaining = self._remaining()
        if remaining is not None and remaining <= 0:
            return StoppedWithRecordsUnwritten("the run's deadline was reached with records unwritten")
        return StoppedWithRecordsUnwritten("the pipeline is closing with records unwritten")

    async def _pause(self, delay: float) -> None:
        """Sleep ``delay`` seconds unless the deadline or an abort comes first (then raise)."""
        remaining = self._remaining()
        if remaining is not None and remaining <= delay:
            delay = max(remaining, 0.0)
            expire = True
        else:
            expire = False
        if self.abort.is_set():
            raise self._bound_error()
        if self._sleep is not None:
            await self._sleep(delay)
            if self.abort.is_set() or expire:
                raise self._bound_error()
            return
        if await wait_until_set(self.abort, delay) or expire:
            raise self._bound_error()

    async def _bounded(self, start: Callable[[], Awaitable[_T]]) -> _T:
        """Await ``start()`` unless the deadline passes or the workflow aborts first."""
        if self.abort.is_set():
            raise self._bound_error()
        remaining = self._remaining()
        if remaining is not None and remaining <= 0:
            raise self._bound_error()
        call = asyncio.ensure_future(start())
        aborted = asyncio.ensure_future(self.abort.wait())
        try:
            done, _ = await asyncio.wait(
                {call, aborted}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            aborted.cancel()
            if not call.done():
                call.cancel()
                await asyncio.gather(call, return_exceptions=True)
        if call in done:
            if call.cancelled():
                # Only the finally above cancels the call, and only an unfinished one: this
                # CancelledError came from inside the sink (an HTTP library's own timeout).
                # A failed call, waited out like an outage; re-raised, it ended the lane.
                raise TransientServiceError(f"the {self._sink_name} call was cancelled inside the sink")
            return call.result()
        raise self._bound_error()

    def _log_unresolved(self, entries: Sequence[DeadLetterEntry], why: str) -> None:
        for entry in entries:
            logger.error(
                f"record could not be dead-lettered: {why}",
                extra={
                    "position": entry.source_position.identity,
                    "error_type": entry.error_type,
                    "sink": self._sink_name,
                },
            )
