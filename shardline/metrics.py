"""Metrics as an observer protocol with a null default.

Components call ``observer.on_<event>(**fields)``; exporters (CloudWatch EMF, OpenTelemetry,
the bench's own recorder) implement the methods they care about.  Every method takes
``**extra`` so new fields can be added without breaking observers, as in s3transfer's
subscribers.  There is no global collector: each component receives its observer.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

__all__ = ["CompositeObserver", "IsolatedObserver", "MetricsObserver", "NullObserver", "isolate"]

_log = logging.getLogger(__name__)


@runtime_checkable
class MetricsObserver(Protocol):
    """What producers, consumers and sinks report.  Any subset may be implemented."""

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        """A counter or gauge sample: ``name`` like ``records_sent``; dimensions like stream, shard."""


class NullObserver:
    """Discards everything; the default so instrumented code never checks for ``None``."""

    __slots__ = ()

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        return None


class CompositeObserver:
    """Fans one event out to several observers."""

    __slots__ = ("_observers",)

    def __init__(self, *observers: MetricsObserver) -> None:
        self._observers = observers

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        for observer in self._observers:
            observer.on_event(name, value, **dimensions)


class IsolatedObserver:
    """Wraps a user observer so that its exceptions never reach the code reporting the event.

    Background tasks call observers; an observer that raises must not end them.  The first
    failure is logged (error type only, never the event's dimensions) and every failure is
    counted in :attr:`errors`.
    """

    __slots__ = ("_inner", "errors")

    def __init__(self, inner: MetricsObserver) -> None:
        self._inner = inner
        self.errors = 0

    def __repr__(self) -> str:
        return f"IsolatedObserver({self._inner!r}, errors={self.errors})"

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        try:
            self._inner.on_event(name, value, **dimensions)
        except Exception as exc:  # noqa: BLE001 - a user observer must not kill the caller
            self.errors += 1
            if self.errors == 1:
                _log.warning(
                    "metrics observer raised; further errors are counted, not logged",
                    extra={"event": name, "error_type": type(exc).__name__},
                )


def isolate(observer: MetricsObserver | None) -> MetricsObserver:
    """``observer`` behind an :class:`IsolatedObserver` (a :class:`NullObserver` for ``None``)."""
    if observer is None or isinstance(observer, NullObserver | IsolatedObserver):
        return observer if observer is not None else NullObserver()
    return IsolatedObserver(observer)
