"""How many messages each partition a Kafka group member owns is behind, from what the client holds.

Kafka batches carry no ``MillisBehindLatest``; a partition's lag is counted in messages
instead: its high watermark minus the next offset this member reads.  Both come from
librdkafka without a request to the broker:

* the high watermark every fetch response carries, which librdkafka keeps per partition
  (``get_watermark_offsets(tp, cached=True)``, about 0.6 us).  A broker round trip
  (``cached=False``, a ListOffsets request) is not made: it could stall consumption on a broker
  that does not answer, and the local Tansu broker answers it wrongly (``(0, 1)`` for a
  partition of 572 messages) while its fetch responses carry the right value;
* the consumer's position (``position()``, the offset after the last message handed out).  Not
  the last message's offset + 1: the position also steps over a transaction's commit marker,
  which takes an offset of its own, so a partition written transactionally would otherwise
  stay one message behind for good.

Either is ``OFFSET_INVALID`` (-1001) until known: the watermark before the partition's first
fetch response, the position before its first message.  Such a partition is left out, unless
it holds nothing (low watermark = high): it is then at its end wherever it starts.  So is a
partition this member resumes at its very end, until a message arrives there (only a
request to the broker, the committed offset, would tell where it starts).

The partitions come from the rebalance callbacks, not ``assignment()``, which waits for
librdkafka's main thread (about 50 us a call).  A measurement is made at most once per
interval, on whichever thread has just called ``consume()``, so it never competes with a
fetch; a rebalance makes the next one due at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from consumers._kafka_messages import partition_name

__all__ = ["LagSampler", "PartitionLag"]

PartitionLag = tuple[str, str, int]
"""``(topic, partition name, messages behind)``: one partition's lag."""


class LagSampler:
    """Measures the lag of the partitions a consumer owns, at most once per ``interval_s``.

    :meth:`assigned` and :meth:`revoked` follow the rebalance callbacks; :meth:`sample` is
    called after each ``consume()``, on the thread that made it.
    """

    def __init__(
        self, consumer: Any, interval_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._consumer = consumer
        self._interval_s = interval_s
        self._clock = clock
        self._owned: tuple[TopicPartition, ...] = ()
        """Replaced whole, never changed in place: a callback served on the other thread
        never changes the tuple a measurement is reading."""
        self._next_at = float("-inf")

    def assigned(self, partitions: Iterable[Any]) -> None:
        """Partitions the group gave this member; measured at the next :meth:`sample`."""
        owned = {(tp.topic, tp.partition): tp for tp in self._owned}
        for tp in partitions:
            owned.setdefault((tp.topic, tp.partition), TopicPartition(tp.topic, tp.partition))
        self._owned = tuple(owned.values())
        self._next_at = float("-inf")

    def revoked(self, partitions: Iterable[Any]) -> None:
        """Partitions taken away: never measured again (until assigned again)."""
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._owned = tuple(tp for tp in self._owned if (tp.topic, tp.partition) not in gone)
        self._next_at = float("-inf")

    def sample(self) -> list[PartitionLag]:
        """The lag of every owned partition whose lag is known, if a measurement is due.

        Nothing (and still due) while no owned partition's lag is known yet, so the first
        values come with the first fetch rather than an interval later.
        """
        now = self._clock()
        if now < self._next_at:
            return []
        owned = self._owned
        if not owned:
            return []
        lags: list[PartitionLag] = []
        try:
            positions = self._consumer.position(list(owned))
        except KafkaException:
            return []  # the client is failing: its errors are reported where consume() raises
        for tp in positions:
            lag = self._lag_of(tp)
            if lag is not None:
                lags.append((tp.topic, partition_name(tp.topic, tp.partition), lag))
        if lags:
            self._next_at = now + self._interval_s
        return lags

    def _lag_of(self, position: TopicPartition) -> int | None:
        """``position``'s partition's lag, or ``None`` while it is not known."""
        if position.error is not None:
            return None  # not assigned any more: the revoke callback is on its way
        try:
            low, high = self._consumer.get_watermark_offsets(position, cached=True)
        except KafkaException:
            return None  # a partition librdkafka no longer knows
        if high < 0:
            return None  # OFFSET_INVALID: no fetch response for it yet
        offset: int = position.offset
        if offset >= 0:
            return max(0, int(high) - offset)
        return 0 if low == high else None
