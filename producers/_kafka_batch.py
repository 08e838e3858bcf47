"""One delivery future for a whole ``send_many()`` batch of Kafka messages.

A future, a callback closure and a :class:`~shardline.records.KafkaAck` per message cost
more Python time than librdkafka spends on the message itself.  A batch instead gets one
:class:`DeliveryBatch`, and each message's ``on_delivery`` is a reusable slot of a
:class:`CallbackPool` whose report writes the partition and offset into the batch's two
preallocated lists and counts the report.
:class:`KafkaBatchAcks` turns those lists into acks only when they are read.

Reports arrive on two threads (the event loop's inline polls and the delivery thread), so
each thread counts in its own field and no count is ever lost to a race; whichever thread
sees the last report hands the batch to the loop, which resolves the future exactly once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import MethodType
from typing import Any

from producers._acks import LazyAcks
from shardline.errors import ShardlineError
from shardline.records import KafkaAck

__all__ = ["CallbackPool", "DeliveryBatch", "KafkaBatchAcks"]

_get_ident = threading.get_ident


class KafkaBatchAcks(LazyAcks[KafkaAck]):
    """The acknowledgements of a ``send_many()`` batch, in the order the messages were given.

    Reading a position whose message failed raises that message's error; :attr:`failed`
    maps each failed position to its error, so nothing fails silently.
    """

    __slots__ = ("_offsets", "_partitions", "topic")

    def __init__(
        self,
        topic: str,
        partitions: list[int],
        offsets: list[int],
        failed: dict[int, ShardlineError],
    ) -> None:
        self.topic = topic
        self._partitions = partitions
        self._offsets = offsets
        super().__init__(failed)

    def __len__(self) -> int:
        return len(self._offsets)

    def _build(self, index: int) -> KafkaAck:
        return KafkaAck(self.topic, self._partitions[index], self._offsets[index])

    def end_offsets(self) -> dict[int, int]:
        """The highest acknowledged offset + 1 per partition, without building any ack."""
        ends: dict[int, int] = {}
        failed = self.failed
        for index, (partition, offset) in enumerate(zip(self._partitions, self._offsets, strict=True)):
            if failed and index in failed:
                continue
            if offset + 1 > ends.get(partition, 0):
                ends[partition] = offset + 1
        return ends

    def __repr__(self) -> str:
        return f"KafkaBatchAcks(<{len(self)} messages, {len(self.failed)} failed>)"


class DeliveryBatch:
    """Collects the delivery reports of one batch; see the module docstring.

    ``expected`` starts at the batch size and shrinks if part of the batch was never queued
    (:meth:`not_queued`).  ``on_complete`` runs on the loop thread when the last report of
    the batch was served there; ``hand_over`` (the delivery thread's round list) receives
    the batch when the last report was served on the delivery thread.  ``on_error`` sees
    each failure as it arrives (a fatal one must stop further sends at once, not when the
    whole batch has reported).  Reports reach it through a :class:`CallbackPool`.
    """

    __slots__ = (
        "counts",
        "errors",
        "expected",
        "future",
        "hand_over",
        "offsets",
        "on_complete",
        "on_error",
        "partitions",
        "queued_all",
    )

    def __init__(
        self,
        future: asyncio.Future[KafkaBatchAcks],
        size: int,
        *,
        on_complete: Callable[[DeliveryBatch], None],
        hand_over: Callable[[DeliveryBatch], None],
        on_error: Callable[[Any], None] | None = None,
    ) -> None:
        self.future = future
        self.expected = size
        self.queued_all = False
        self.on_complete = on_complete
        self.hand_over = hand_over
        self.on_error = on_error
        self.partitions: list[int] = [-1] * size
        self.offsets: list[int] = [-1] * size
        self.errors: list[tuple[int, Any]] = []
        # [reports served on the loop thread, reports served elsewhere]: each slot is written
        # by one thread only, so neither thread can lose the other's increment.
        self.counts = [0, 0]

    @property
    def reported(self) -> int:
        """Reports received so far, from both threads."""
        return self.counts[0] + self.counts[1]

    @property
    def complete(self) -> bool:
        return self.queued_all and self.reported >= self.expected

    def not_queued(self, start: int, error: ShardlineError) -> None:
        """Messages ``start..`` were never handed to librdkafka (loop thread only)."""
        for index in range(start, len(self.offsets)):
            self.errors.append((index, error))
        self.expected = start

    def finish_queueing(self) -> None:
        """Every message is queued; resolve now if their reports already arrived (loop thread)."""
        if self.queued_all:
            return
        self.queued_all = True
        if self.complete:
            self.on_complete(self)

    def acks(self, topic: str, failed: dict[int, ShardlineError]) -> KafkaBatchAcks:
        return KafkaBatchAcks(topic, self.partitions, self.offsets, failed)


class CallbackPool:
    """Reusable ``on_delivery`` callables, one per batch message in flight.

    A callable allocated per message (a bound method or ``functools.partial``) lives until its
    delivery report, long enough to be promoted through the garbage collector's generations;
    on a busy producer that costs about as much as librdkafka's own work per message.  Slots
    here are taken when a message is queued and given back when its report arrives, so a
    steady stream allocates nothing per message; the pool grows to the largest number of
    batch messages in flight at once (bounded by librdkafka's queue).

    ``free`` is popped on the event loop thread only and appended to from any polling thread;
    a slot's batch and index are written before the message is queued and read (then
    released) by its report, so no lock is needed.  ``loop_thread`` tells the report which
    of a batch's two counters to advance.
    """

    __slots__ = ("_report", "callbacks", "free", "indexes", "owners")

    def __init__(self, loop_thread: int) -> None:
        self.callbacks: list[Callable[[Any, Any], None]] = []
        self.owners: list[DeliveryBatch | None] = []
        self.indexes: list[int] = []
        self.free: list[int] = []
        self._report = _pool_report(self, loop_thread)

    def __len__(self) -> int:
        return len(self.callbacks)

    def grow(self) -> int:
        """A new slot (loop thread only), for when no free one is left."""
        slot = len(self.callbacks)
        self.owners.append(None)
        self.indexes.append(0)
        self.callbacks.append(MethodType(self._report, slot))
        return slot

    def take(self, batch: DeliveryBatch, index: int) -> int:
        """A slot whose callback reports message ``index`` of ``batch`` (loop thread)."""
        slot = self.free.pop() if self.free else self.grow()
        self.owners[slot] = batch
        self.indexes[slot] = index
        return slot

    def give_back(self, slot: int) -> None:
        """The message of ``slot`` was never queued."""
        self.owners[slot] = None
        self.free.append(slot)


def _pool_report(pool: CallbackPool, loop_thread: int) -> Callable[[int, Any, Any], None]:
    owners, indexes, release = pool.owners, pool.indexes, pool.free.append
    get_ident = _get_ident

    def report(slot: int, err: Any, msg: Any) -> None:
        """librdkafka's delivery report for the message of ``slot`` (any polling thread).

        One closure doing all the bookkeeping inline: it runs once per message.
        """
        batch = owners[slot]
        index = indexes[slot]
        owners[slot] = None
        release(slot)
        assert batch is not None
        if err is None:
            batch.partitions[index] = msg.partition()
            batch.offsets[index] = msg.offset()
        else:
            batch.errors.append((index, err))  # list.append is atomic under the GIL
            if batch.on_error is not None:
                batch.on_error(err)
        counts = batch.counts
        if get_ident() == loop_thread:
            counts[0] += 1
            if batch.queued_all and counts[0] + counts[1] >= batch.expected:
                batch.on_complete(batch)
        else:
            counts[1] += 1
            if batch.queued_all and counts[0] + counts[1] >= batch.expected:
                batch.hand_over(batch)

    return report
