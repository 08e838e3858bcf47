"""What a person running ``shardline consume`` wants to see: progress, and when each shard is caught up.

:class:`ConsumeProgress` is a metrics observer placed in front of the real one: it forwards
every event unchanged and keeps the few figures a progress line needs (records in and out,
the partitions read, each partition's lag behind the tip, when the store last accepted a
checkpoint).  :meth:`ConsumeProgress.log` writes one progress line.

Lag is time for Kinesis and messages for Kafka.  A Kinesis batch carries its shard's
``MillisBehindLatest`` (``iterator_age_ms``); a Kafka batch carries nothing of the kind, and
the source measures each partition it owns instead, in messages between the high watermark
and its next offset (``kafka_lag_messages``, about once a second).  A partition whose lag
reaches 0 logs "caught up" once; falling far behind again (:data:`BEHIND_AGAIN_MS`,
:data:`BEHIND_AGAIN_MESSAGES`) re-arms it, so a lag that only flickers above 0 at the tip
does not log it over and over.

Where the partition count comes from depends on the source.  A Kinesis shard reports its lag
with every batch, so the shards that did are the ones read, until the worker loses the shard's
lease (``leases_lost``) or reads it to its end (``shards_finished``: a split or merge closed it,
and its children are read next; kept, every closed parent counted in ``partitions`` for the
rest of the run, and its last lag held the largest lag up).  A Kafka group member reports every
assignment and revocation (``kafka_partitions_assigned`` / ``kafka_partitions_revoked``,
counts without a partition name); the partitions it owns are what those add up to.  Counting
lag reports alone showed ``partitions=0`` for a Kafka consumer reading four partitions, and
would still miss a partition whose lag is not known yet.  Because a revocation does not say
which partitions went, it empties the Kafka lag map; the source measures the partitions it
still owns right after every rebalance, so the map fills again with those alone, and a
partition that moved to another member never holds the largest lag up.

A Kafka member reads nothing until its group's first assignment, and a first join can take a
while (on Tansu about half the session timeout); until then the progress line names the group
it waits for (``waiting_for``), so ``records_in=0 partitions=0`` does not read as a consumer
that is stuck.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from shardline import metrics_events as events
from shardline.metrics import MetricsObserver, NullObserver

__all__ = ["ConsumeProgress"]

BEHIND_AGAIN_MS = 60_000
"""A Kinesis shard this far behind the tip is no longer "caught up"."""
BEHIND_AGAIN_MESSAGES = 10_000
"""A Kafka partition this many messages behind is no longer "caught up"."""


class ConsumeProgress:
    """Forwards events to ``inner``; counts what progress lines report."""

    def __init__(
        self,
        inner: MetricsObserver | None = None,
        *,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        kafka_group: str | None = None,
    ) -> None:
        self._inner: MetricsObserver = inner if inner is not None else NullObserver()
        self._logger = logger if logger is not None else logging.getLogger("shardline.consume")
        self._clock = clock
        self.records_in = 0
        self.records_out = 0
        self.lag_ms: dict[str, float] = {}
        """Kinesis: each shard's last ``iterator_age_ms``."""
        self.lag_messages: dict[str, int] = {}
        """Kafka: each owned partition's last ``kafka_lag_messages`` (a revocation empties it).
        Replaced, never emptied in place: revocations are reported on the consumer's thread."""
        self.kafka_assigned: int | None = None
        """Partitions the Kafka group gave this member (``None``: no assignment reported)."""
        self.caught_up: set[str] = set()
        self.last_checkpoint: float | None = None
        self._kafka_group = kafka_group

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self._inner.on_event(name, value, **dimensions)
        if name == events.RECORDS_IN:
            self.records_in += int(value)
        elif name == events.RECORDS_OUT:
            self.records_out += int(value)
        elif name == events.ITERATOR_AGE_MS:
            partition = str(dimensions.get("partition", "?"))
            self.lag_ms[partition] = value
            self._note_lag(partition, value, BEHIND_AGAIN_MS)
        elif name == events.KAFKA_LAG_MESSAGES:
            partition = str(dimensions.get("partition", "?"))
            self.lag_messages[partition] = int(value)
            self._note_lag(partition, value, BEHIND_AGAIN_MESSAGES)
        elif name == events.KAFKA_PARTITIONS_ASSIGNED:
            self.kafka_assigned = (self.kafka_assigned or 0) + int(value)
        elif name == events.KAFKA_PARTITIONS_REVOKED:
            # eager rebalances revoke everything and assign anew; cooperative ones move a few
            self.kafka_assigned = max(0, (self.kafka_assigned or 0) - int(value))
            self.lag_messages = {}  # which ones went is not said: the owned ones report again
        elif name in (events.LEASES_LOST, events.SHARDS_FINISHED):
            # another worker took the shard, or it was read to its end: this one no longer
            # reads it.  Kept, its last lag held max_lag_ms for good (taken while behind, the
            # line never caught up) and it stayed in partitions; taken back, it reports its
            # lag again with its next batch
            shard = str(dimensions.get("shard", dimensions.get("partition", "?")))
            self.lag_ms.pop(shard, None)
            self.caught_up.discard(shard)
        elif name == events.CHECKPOINTS_WRITTEN:
            # not checkpoint_lag: that gauge comes with every checkpoint pass, also one that
            # wrote nothing (a sink down, a store down), and a stuck consumer looked healthy
            self.last_checkpoint = self._clock()

    def _note_lag(self, partition: str, lag: float, behind_again: float) -> None:
        """Log "caught up" the first time ``partition`` is at the tip; re-arm once it is
        ``behind_again`` behind."""
        if lag <= 0 and partition not in self.caught_up:
            self.caught_up.add(partition)
            self._logger.info("caught up", extra={"partition": partition, "records_in": self.records_in})
        elif lag >= behind_again:
            self.caught_up.discard(partition)

    @property
    def partitions(self) -> int:
        """Partitions read: those the Kafka group assigned, else those that reported a lag."""
        return self.kafka_assigned if self.kafka_assigned is not None else len(self.lag_ms)

    def log(self) -> None:
        """One progress line: records, partitions, the largest lag and partitions caught up
        (only once some partition reported its lag: before that ``caught_up=0`` read as a
        consumer that never catches up), last checkpoint.

        Kinesis: ``max_lag_ms``.  Kafka: ``max_lag_messages``, and ``caught_up`` counts only
        the partitions this member owns (one caught up before it was revoked is not)."""
        fields: dict[str, Any] = {
            "records_in": self.records_in,
            "records_out": self.records_out,
            "partitions": self.partitions,
        }
        if self._kafka_group is not None and self.kafka_assigned is None:
            fields["waiting_for"] = f"group {self._kafka_group!r} to assign partitions"
        lag_messages = self.lag_messages  # one map: a revocation may replace it meanwhile
        if self.lag_ms:
            fields["caught_up"] = len(self.caught_up)
            fields["max_lag_ms"] = int(max(self.lag_ms.values()))
        elif lag_messages:
            fields["caught_up"] = sum(1 for partition in lag_messages if partition in self.caught_up)
            fields["max_lag_messages"] = max(lag_messages.values())
        if self.last_checkpoint is not None:
            fields["last_checkpoint_s_ago"] = round(self._clock() - self.last_checkpoint, 1)
        self._logger.info("progress", extra=fields)
