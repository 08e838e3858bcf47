"""Starting and stopping a run's reader tasks, and saying which of them had died.

A run's clock starts once every reader is positioned (:class:`ReadersPositioned`): getting
a shard iterator or opening a subscription, and the connections behind them, is set-up
whose cost grows with the shard count, not with the records, so it is kept out of the
client CPU per record and out of the first records' latency.

A reader that stops on an error leaves its shard unread: the run's consumed count then falls
short of what was written, and a report that only shows the shortfall leaves the operator to
guess whether records were lost.  The runs used to gather their readers with
``return_exceptions=True`` and drop the results; :func:`stop_readers` turns each death into
a note the result and the report carry.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from functools import partial
from typing import Any

from shardline import metrics_events as events
from shardline.errors import ShardlineError

__all__ = [
    "POSITIONED_EVENTS",
    "READERS_PATIENCE",
    "READERS_POSITIONED_TIMEOUT",
    "ReadersPositioned",
    "start_when_positioned",
    "stop_readers",
]

READERS_POSITIONED_TIMEOUT = 60.0
"""Seconds a run waits for its readers' positions before it starts without the rest."""
READERS_PATIENCE = 1.0
"""Seconds of that wait before the run says what it is waiting for."""

POSITIONED_EVENTS = {
    "polling": events.GET_RECORDS_CALLS,
    "efo": events.SUBSCRIPTIONS,
    "kafka": events.KAFKA_PARTITIONS_ASSIGNED,
}
"""The first event a reader of each kind reports once it holds a position: a polling reader's
first GetRecords call, a fan-out reader's first subscription, a Kafka group member's first
partition assignment."""


class ReadersPositioned:
    """Which of a run's readers hold a position: a polling reader once it has an iterator
    (its first GetRecords call), a fan-out reader once its first subscription is open, a
    Kafka group member once it was assigned its partitions.

    Each reader gets :meth:`observer` as its metrics observer; after its first positioned
    event the observer costs one comparison per event.  Made on the run's event loop; the
    observers may report from any thread (a Kafka member's assignment arrives on the thread
    that polls its consumer).
    """

    def __init__(self, readers: Iterable[tuple[str, str]]) -> None:
        self._waiting = set(readers)
        self._total = len(self._waiting)
        self._all = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if not self._waiting:
            self._all.set()

    def observer(self, shard_id: str, kind: str) -> _PositionObserver:
        """The observer for the ``kind`` reader of ``shard_id`` (a partition or a group)."""
        done = partial(self._loop.call_soon_threadsafe, self._done, (shard_id, kind))
        return _PositionObserver(done, POSITIONED_EVENTS[kind])

    def _done(self, reader: tuple[str, str]) -> None:
        self._waiting.discard(reader)
        if not self._waiting:
            self._all.set()

    @property
    def waiting(self) -> int:
        """Readers not positioned yet."""
        return len(self._waiting)

    @property
    def total(self) -> int:
        return self._total

    async def wait(self, tasks: Iterable[asyncio.Task[Any]], timeout: float) -> float:
        """Wait until every reader is positioned, one of ``tasks`` ends (a reader that died
        has nothing to wait for; :func:`stop_readers` reports it) or ``timeout`` passes.
        Returns the seconds waited."""
        started = time.monotonic()
        if self._all.is_set():
            return 0.0
        positioned = asyncio.ensure_future(self._all.wait())
        try:
            await asyncio.wait([positioned, *tasks], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            positioned.cancel()
        return time.monotonic() - started


async def start_when_positioned(
    positioned: ReadersPositioned,
    tasks: Collection[asyncio.Task[Any]],
    *,
    readers: str = "readers",
    missing: str = "position in their shard",
) -> str | None:
    """Wait, bounded, until every reader holds a position; say so after a second of waiting.

    Returns the note a result carries when the run starts without some of them (``None``
    when all are positioned).  A reader task that ends stops the wait at once: a dead reader
    has nothing to wait for, and :func:`stop_readers` names it.
    """
    timeout, patience = READERS_POSITIONED_TIMEOUT, READERS_PATIENCE
    await positioned.wait(tasks, timeout=patience)
    if positioned.waiting and not any(task.done() for task in tasks):
        print(
            f"stream-bench: waiting for {positioned.waiting} of {positioned.total} {readers}:"
            f" no {missing} yet (at most {timeout:.0f} s)",
            file=sys.stderr,
        )
        await positioned.wait(tasks, timeout=timeout - patience)
    if not positioned.waiting:
        return None
    lacking = f"{positioned.waiting} of {positioned.total} {readers} had no {missing}"
    if any(task.done() for task in tasks):
        return f"a reader stopped before the run started; {lacking} then"
    return f"{lacking} after {timeout:.0f} s; the run started without waiting for them"


class _PositionObserver:
    """A reader's observer that reports its first positioned event and ignores everything else."""

    __slots__ = ("_event", "_on_positioned")

    def __init__(self, on_positioned: Callable[[], object], event: str) -> None:
        self._on_positioned: Callable[[], object] | None = on_positioned
        self._event = event

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        if name == self._event and self._on_positioned is not None:
            on_positioned, self._on_positioned = self._on_positioned, None
            on_positioned()


async def stop_readers(readers: Mapping[asyncio.Task[None], str]) -> list[str]:
    """Cancel ``readers`` (task -> what it read) and return a note for each that had failed.

    A reader still running is cancelled, which is how a run ends it; one that ended on an
    exception gets a note naming the error: its type, and the message of Shardline's own
    errors (never a record's bytes: other libraries' messages may quote what they parsed).
    """
    for task in readers:
        task.cancel()
    results = await asyncio.gather(*readers, return_exceptions=True)
    return [
        f"{name} stopped early on {_reason(result)}: what it had not read is missing from the counts"
        for name, result in zip(readers.values(), results, strict=True)
        if isinstance(result, Exception)
    ]


def _reason(error: Exception) -> str:
    if isinstance(error, ShardlineError) and str(error):
        return f"{type(error).__name__} ({error})"
    return type(error).__name__
