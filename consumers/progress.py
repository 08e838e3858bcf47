"""What a person running ``shardline consume`` wants to see: progress, and when each shard is caught up.

:class:`ConsumeProgress` is a metrics observer placed in front of the real one: it forwards
every event unchanged and keeps the few figures a progress line needs (records in and out,
the partitions read, each partition's lag behind the tip, when the store last accepted a
checkpoint).  The first batch a partition reads at the tip (``millis_behind_latest`` 0) logs
"caught up" for it once; falling behind again re-arms it.  :meth:`ConsumeProgress.log` writes
one progress line.

Where the partition count comes from depends on the source.  A Kinesis shard reports its lag
with every batch, so the shards that did are the ones read.  A Kafka batch carries no lag
(Kafka has no ``MillisBehindLatest``), but the group member reports every assignment and
revocation (``kafka_partitions_assigned`` / ``kafka_partitions_revoked``, counts without a
partition name); the partitions it owns are what those add up to.  Counting lag reports alone
showed ``partitions=0`` for a Kafka consumer reading four partitions.
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
        self.kafka_assigned: int | None = None
        """Partitions the Kafka group gave this member (``None``: no assignment reported)."""
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
        elif name == events.KAFKA_PARTITIONS_ASSIGNED:
            self.kafka_assigned = (self.kafka_assigned or 0) + int(value)
        elif name == events.KAFKA_PARTITIONS_REVOKED:
            # eager rebalances revoke everything and assign anew; cooperative ones move a few
            self.kafka_assigned = max(0, (self.kafka_assigned or 0) - int(value))
        elif name == events.CHECKPOINTS_WRITTEN:
            # not checkpoint_lag: that gauge comes with every checkpoint pass, also one that
            # wrote nothing (a sink down, a store down), and a stuck consumer looked healthy
            self.last_checkpoint = self._clock()

    @property
    def partitions(self) -> int:
        """Partitions read: those the Kafka group assigned, else those that reported a lag."""
        return self.kafka_assigned if self.kafka_assigned is not None else len(self.lag_ms)

    def log(self) -> None:
        """One progress line: records, partitions, the largest lag and partitions caught up
        (only once some partition reported its lag: a Kafka source reports none, and
        ``caught_up=0`` beside it read as a consumer that never catches up), last checkpoint."""
        fields: dict[str, Any] = {
            "records_in": self.records_in,
            "records_out": self.records_out,
            "partitions": self.partitions,
        }
        if self.lag_ms:
            fields["caught_up"] = len(self.caught_up)
            fields["max_lag_ms"] = int(max(self.lag_ms.values()))
        if self.last_checkpoint is not None:
            fields["last_checkpoint_s_ago"] = round(self._clock() - self.last_checkpoint, 1)
        self._logger.info("progress", extra=fields)
