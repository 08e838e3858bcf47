"""One delivery future for a whole ``send_many()`` batch of Kafka messages.

A future, a callback closure and a :class:`~shardline.records.KafkaAck` per message cost
more Python time than librdkafka spends on the message itself.  A batch instead gets one
:class:`DeliveryBatch`: each message's ``on_delivery`` is ``partial(batch.report, index)``,
which writes the partition and offset into two preallocated lists and counts the report.
:class:`KafkaBatchAcks` turns those lists into acks only when they are read.

Reports arrive on two threads (the event loop's inline polls and the delivery thread), so
each thread counts in its own field and no count is ever lost to a race; whichever thread
sees the last report hands the batch to the loop, which resolves the future exactly once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from shardline.errors import ShardlineError
from shardline.records import KafkaAck

__all__ = ["DeliveryBatch", "KafkaBatchAcks"]

_get_ident = threading.get_ident
_new_object = object.__new__
_set_topic = vars(KafkaAck)["topic"].__set__
_set_partition = vars(KafkaAck)["partition"].__set__
_set_offset = vars(KafkaAck)["offset"].__set__


def make_ack(topic: str, partition: int, offset: int) -> KafkaAck:
    """``KafkaAck(topic, partition, offset)`` through its slot setters, at half the cost.

    A frozen dataclass's ``__init__`` goes through ``object.__setattr__`` per field.
    """
    ack: KafkaAck = _new_object(KafkaAck)
    _set_topic(ack, topic)
    _set_partition(ack, partition)
    _set_offset(ack, offset)
    return ack


class KafkaBatchAcks(Sequence[KafkaAck]):
    """The acknowledgements of a ``send_many()`` batch, in the order the messages were given.

    Reading a position whose message failed raises that message's error; :attr:`failed`
    maps each failed position to its error, so nothing fails silently.
    """

    __slots__ = ("_offsets", "_partitions", "failed", "topic")

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
        self.failed = failed

    @property
    def ok(self) -> bool:
        """True when every message of the batch was acknowledged."""
        return not self.failed

    def __len__(self) -> int:
        return len(self._offsets)

    def _ack(self, index: int) -> KafkaAck:
        if self.failed:
            error = self.failed.get(index)
            if error is not None:
                raise error
        return make_ack(self.topic, self._partitions[index], self._offsets[index])

    @overload
    def __getitem__(self, index: int) -> KafkaAck: ...
    @overload
    def __getitem__(self, index: slice) -> list[KafkaAck]: ...
    def __getitem__(self, index: int | slice) -> KafkaAck | list[KafkaAck]:
        if isinstance(index, slice):
            return [self._ack(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._ack(index)

    def __iter__(self) -> Iterator[KafkaAck]:
        for i in range(len(self)):
            yield self._ack(i)

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
    whole batch has reported).
    """

    __slots__ = (
        "_counts",
        "_on_complete",
        "errors",
        "expected",
        "future",
        "offsets",
        "partitions",
        "queued_all",
        "report",
    )

    def __init__(
        self,
        future: asyncio.Future[KafkaBatchAcks],
        size: int,
        *,
        loop_thread: int,
        on_complete: Callable[[DeliveryBatch], None],
        hand_over: Callable[[DeliveryBatch], None],
        on_error: Callable[[Any], None] | None = None,
    ) -> None:
        self.future = future
        self.expected = size
        self.queued_all = False
        self._on_complete = on_complete
        partitions: list[int] = [-1] * size
        offsets: list[int] = [-1] * size
        errors: list[tuple[int, Any]] = []
        # [reports served on the loop thread, reports served elsewhere]: each slot is written
        # by one thread only, so neither thread can lose the other's increment.
        counts = [0, 0]
        self.partitions, self.offsets, self.errors, self._counts = partitions, offsets, errors, counts
        get_ident = _get_ident
        batch = self

        def report(index: int, err: Any, msg: Any) -> None:
            """librdkafka's delivery report for message ``index`` (any polling thread).

            A closure over the lists, not a method: this runs once per message.
            """
            if err is None:
                partitions[index] = msg.partition()
                offsets[index] = msg.offset()
            else:
                errors.append((index, err))  # list.append is atomic under the GIL
                if on_error is not None:
                    on_error(err)
            if get_ident() == loop_thread:
                counts[0] += 1
                if counts[0] + counts[1] >= batch.expected and batch.queued_all:
                    on_complete(batch)
            else:
                counts[1] += 1
                if counts[0] + counts[1] >= batch.expected and batch.queued_all:
                    hand_over(batch)

        # Each message's on_delivery is partial(self.report, index).
        self.report = report

    @property
    def reported(self) -> int:
        """Reports received so far, from both threads."""
        return self._counts[0] + self._counts[1]

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
            self._on_complete(self)

    def acks(self, topic: str, failed: dict[int, ShardlineError]) -> KafkaBatchAcks:
        return KafkaBatchAcks(topic, self.partitions, self.offsets, failed)
