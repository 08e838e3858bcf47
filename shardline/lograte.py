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

__all__ = ["RepeatedWarning"]


class RepeatedWarning:
    """Logs ``logger.warning(message, *args)`` for each kind at most once per ``interval``.

    Thread-safe: librdkafka calls ``error_cb`` from whichever thread polls.
    """

    def __init__(
        self, logger: logging.Logger, interval: float = 60.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}

    def warning(self, kind: Hashable, message: str, *args: object) -> None:
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._held[kind] = self._held.get(kind, 0) + 1
                return
            self._last[kind] = now
            held = self._held.pop(kind, 0)
        if held:
            self._logger.warning(message + " (and %d more like it since)", *args, held)
        else:
            self._logger.warning(message, *args)
