"""What a person running ``shardline consume`` wants to see: progress, and when each shard is caught up.

:class:`ConsumeProgress` is a metrics observer placed in front of the real one: it forwards
every event unchanged and keeps the few figures a progress line needs (records in and out,
each partition's lag behind the tip, when the store last accepted a checkpoint).  The first batch a
partition reads at the tip (``millis_behind_latest`` 0) logs "caught up" for it once; falling
behind again re-arms it.  :meth:`ConsumeProgress.log` writes one progress line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from shardline import metrics_events as events
from shardline.metrics import MetricsObserver, NullObserver

__all__ = ["ConsumeProgress"]

_BEHIND_AGAIN_MS = 60_000  # a partition this far behind is no longer "caught up"


class ConsumeProgress:
    """Forwards events to ``inner``; counts what progress lines report."""

    def __init__(
        self,
        inner: MetricsObserver | None = None,
        *,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner: MetricsObserver = inner if inner is not None else NullObserver()
        self._logger = logger if logger is not None else logging.getLogger("shardline.consume")
        self._clock = clock
        self.records_in = 0
        self.records_out = 0
        self.lag_ms: dict[str, float] = {}
        self.caught_up: set[str] = set()
        self.last_checkpoint: float | None = None

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self._inner.on_event(name, value, **dimensions)
        if name == events.RECORDS_IN:
            self.records_in += int(value)
        elif name == events.RECORDS_OUT:
            self.records_out += int(value)
        elif name == events.ITERATOR_AGE_MS:
            partition = str(dimensions.get("partition", "?"))
            self.lag_ms[partition] = value
            if value <= 0 and partition not in self.caught_up:
                self.caught_up.add(partition)
                self._logger.info("caught up", extra={"partition": partition, "records_in": self.records_in})
            elif value >= _BEHIND_AGAIN_MS:
                self.caught_up.discard(partition)
        elif name == events.CHECKPOINTS_WRITTEN:
            # not checkpoint_lag: that gauge comes with every checkpoint pass, also one that
            # wrote nothing (a sink down, a store down), and a stuck consumer looked healthy
            self.last_checkpoint = self._clock()

    def log(self) -> None:
        """One progress line: records, the largest lag, partitions caught up, last checkpoint."""
        fields: dict[str, Any] = {
            "records_in": self.records_in,
            "records_out": self.records_out,
            "partitions": len(self.lag_ms),
            "caught_up": len(self.caught_up),
        }
        if self.lag_ms:
            fields["max_lag_ms"] = int(max(self.lag_ms.values()))
        if self.last_checkpoint is not None:
            fields["last_checkpoint_s_ago"] = round(self._clock() - self.last_checkpoint, 1)
        self._logger.info("progress", extra=fields)
