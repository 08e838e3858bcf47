"""A warning that repeats, logged at a bounded rate with a count of what it held back.

librdkafka reports a broker it cannot reach through ``error_cb`` on every reconnect attempt
of every connection: ``shardline consume`` against an unreachable broker logged hundreds of
identical lines within milliseconds, burying the one line that ended the run.  The first
report of each kind is logged at once; later ones at most once per ``interval`` seconds,
saying how many were held back meanwhile.  Metrics still count every report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

__all__ = ["RepeatedRecords", "RepeatedWarning"]


class _Window:
    """Per kind, one pass per ``interval``: the decision both rate limits below share.

    Thread-safe: librdkafka calls ``error_cb`` and its log callback from whichever thread polls.
    """

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}

    def admit(self, kind: Hashable) -> int | None:
        """``None`` to hold this one back; else how many of its kind were held back since the last."""
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._held[kind] = self._held.get(kind, 0) + 1
                return None
            self._last[kind] = now
            return self._held.pop(kind, 0)


class RepeatedWarning:
    """Logs ``logger.warning(message, *args)`` for each kind at most once per ``interval``."""

    def __init__(
        self, logger: logging.Logger, interval: float = 60.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self._window = _Window(interval, clock)

    def warning(self, kind: Hashable, message: str, *args: object) -> None:
        held = self._window.admit(kind)
        if held is None:
            return
        if held:
            self._logger.warning(message + " (and %d more like it since)", *args, held)
        else:
            self._logger.warning(message, *args)


class RepeatedRecords(logging.Filter):
    """A logging filter passing each kind of record at most once per ``interval``.

    For records Shardline does not word itself: librdkafka's own log lines (``FAIL`` on every
    reconnect attempt, about twenty a second with the broker down) reach Python logging
    through the client's ``logger`` property.  ``kind`` names a record's kind; the first
    record of a kind passes at once, later ones at most once per ``interval``, carrying how
    many were held back meanwhile in ``held_back`` (and in the message).
    """

    def __init__(
        self,
        kind: Callable[[logging.LogRecord], Hashable],
        interval: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._kind = kind
        self._window = _Window(interval, clock)
        self.suppressed = 0
        """Records held back in all (for diagnostics and tests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        held = self._window.admit(self._kind(record))
        if held is None:
            self.suppressed += 1
            return False
        if held:
            record.msg = f"{record.getMessage()} (and {held} more like it since)"
            record.args = ()
            record.held_back = held
        return True
