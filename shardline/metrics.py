"""Metrics as an observer protocol with a null default.

Components call ``observer.on_event(name, value, **dimensions)``; exporters (CloudWatch EMF,
OpenTelemetry, the bench's own recorder) implement it.  Event names, kinds, units and
dimensions are catalogued in :mod:`shardline.metrics_events`; emitters use its constants.
There is no global collector: each component receives its observer.

An observer is user code called from inside background work (a producer's sender task, a
Kafka delivery callback on librdkafka's thread, a pipeline lane).  Components wrap the
observer they are given with :func:`guard_observer`, so an observer that raises never kills
the task that reported the event: the error is logged once per observer and counted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CompositeObserver",
    "GuardedObserver",
    "MetricsObserver",
    "NullObserver",
    "guard_observer",
    "takes_event",
]

_log = logging.getLogger(__name__)


@runtime_checkable
class MetricsObserver(Protocol):
    """What producers, consumers and sinks report.  Any subset may be implemented."""

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        """A counter, gauge or distribution sample: ``name`` like ``records_sent``; dimensions
        like stream, shard (see :mod:`shardline.metrics_events` for the catalogue)."""


def takes_event(observer: MetricsObserver, name: str) -> bool:
    """Whether ``observer`` wants the event ``name`` at all.

    An observer may list the events it takes in a ``shardline_events`` attribute (a set of
    names; the name is distinctive so that an observer's own ``events`` list means nothing
    here); without one it takes every event.  Hot paths ask once, when they start, and skip
    building and reporting per-entry events nobody takes: a producer reports a latency per
    Kinesis entry and a count per shard of every response (over a hundred calls a response
    at 64 shards), which an observer counting throttles only would discard one by one.
    """
    wanted = _events_taken(observer)
    return wanted is None or name in wanted


def _events_taken(observer: object) -> Any:
    """``observer``'s ``shardline_events``, or ``None`` (every event) without one."""
    return getattr(observer, "shardline_events", None)


class NullObserver:
    """Discards everything; the default so instrumented code never checks for ``None``."""

    __slots__ = ()
    shardline_events: frozenset[str] = frozenset()
    """Takes no event: hot paths skip what only an observer would read (:func:`takes_event`)."""

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        return None


class GuardedObserver:
    """Calls an observer and contains what it raises, so reporting can never kill the reporter.

    Contained: any ``Exception`` and a ``CancelledError`` of the observer's own;
    ``KeyboardInterrupt`` and ``SystemExit`` pass (they may be the process being stopped).

    The first failure is logged with its traceback; later ones are only counted in
    :attr:`failures` (an observer that raises on every event would otherwise flood the log).
    Events may arrive from several threads (Kafka delivery reports come on librdkafka's
    thread), so the counter is updated under a lock taken only on failure.
    """

    __slots__ = ("_lock", "failures", "observer")

    def __init__(self, observer: MetricsObserver) -> None:
        self.observer = observer
        self.failures = 0
        self._lock = threading.Lock()

    @property
    def shardline_events(self) -> frozenset[str] | None:
        """The guarded observer's events (:func:`takes_event`); ``None``: every event."""
        wanted = _events_taken(self.observer)
        return None if wanted is None else frozenset(wanted)

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        try:
            self.observer.on_event(name, value, **dimensions)
        except (Exception, asyncio.CancelledError):  # noqa: BLE001 - contained here, by design
            # on_event is synchronous, so no cancellation of the calling task can arrive inside
            # it: a CancelledError here is the observer's own (a cancelled future's result());
            # let through, it ended the sender or reader task that reported the event
            with self._lock:
                self.failures += 1
                first = self.failures == 1
            if first:
                _log.warning(
                    "metrics observer %s raised on event %r; the event is dropped and later "
                    "failures of this observer are counted, not logged",
                    type(self.observer).__name__,
                    name,
                    exc_info=True,
                )


def guard_observer(observer: MetricsObserver | None) -> MetricsObserver:
    """The observer to call from background work: ``observer`` wrapped in a :class:`GuardedObserver`.

    ``None`` becomes a :class:`NullObserver`; a null or already guarded observer is returned
    as is, so the default costs nothing.
    """
    if observer is None:
        return NullObserver()
    if isinstance(observer, (NullObserver, GuardedObserver)):
        return observer
    return GuardedObserver(observer)


class CompositeObserver:
    """Fans one event out to several observers; one that raises does not starve the others."""

    __slots__ = ("_observers",)

    def __init__(self, *observers: MetricsObserver) -> None:
        self._observers = tuple(guard_observer(observer) for observer in observers)

    @property
    def shardline_events(self) -> frozenset[str] | None:
        """Every event one of the observers takes (:func:`takes_event`); ``None``: every event."""
        union: set[str] = set()
        for observer in self._observers:
            wanted = _events_taken(observer)
            if wanted is None:
                return None
            union.update(wanted)
        return frozenset(union)

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        for observer in self._observers:
            observer.on_event(name, value, **dimensions)
