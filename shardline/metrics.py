"""Metrics as an observer protocol with a null default.

Components call ``observer.on_<event>(**fields)``; exporters (CloudWatch EMF, OpenTelemetry,
the bench's own recorder) implement the methods they care about.  Every method takes
``**extra`` so new fields can be added without breaking observers, as in s3transfer's
subscribers.  There is no global collector: each component receives its observer.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["CompositeObserver", "MetricsObserver", "NullObserver"]


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
