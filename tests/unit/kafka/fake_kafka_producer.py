"""An in-memory stand-in for confluent_kafka.Producer (unit tests only).

``produce`` queues messages (raising BufferError beyond ``capacity``); the test decides when
the "broker" acknowledges them (``acknowledge``) or fails them (``fail``); ``poll`` then
runs their delivery callbacks in the polling thread, as librdkafka does.  A callback that
raises ends the ``poll()``, which raises it; the reports after it wait for the next poll, as
librdkafka re-enqueues them when confluent-kafka yields on a callback's exception.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError


@dataclass
class FakeMessage:
    topic_name: str
    value_bytes: bytes
    key_value: Any
    partition_id: int
    offset_value: int | None = -1
    kwargs: dict[str, Any] = field(default_factory=dict)
    unreadable: BaseException | None = None
    """Raised by ``partition()``: a report that cannot be processed (a bug, a MemoryError)."""

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        if self.unreadable is not None:
            raise self.unreadable
        return self.partition_id

    def offset(self) -> int | None:
        return self.offset_value


ReadyReport = tuple[FakeMessage, Callable[[Any, Any], None], KafkaError | None]
"""A report librdkafka holds until a ``poll()`` serves it: (message, its callback, error or None)."""


class FakeProducer:
    def __init__(self, capacity: int = 1_000_000, partitions: int = 4) -> None:
        self.capacity = capacity
        self.partitions = partitions
        self.produced: list[FakeMessage] = []
        self._queued: list[tuple[FakeMessage, Callable[[Any, Any], None]]] = []
        self._ready: list[ReadyReport] = []
        self._next_offset = [0] * partitions
        self._cond = threading.Condition()
        self.poll_threads: set[str] = set()
        self.purged = False
        self.raise_on_produce: Exception | None = None
        self.on_produce: Callable[[FakeMessage], None] | None = None

    def produce(
        self,
        topic: str,
        value: bytes,
        key: Any = None,
        partition: int = -1,
        on_delivery: Any = None,
        **kwargs: Any,
    ) -> None:
        """The real client's signature: partition -1 means "let the partitioner choose"."""
        if partition != -1:
            kwargs["partition"] = partition
        if self.raise_on_produce is not None:
            raise self.raise_on_produce
        with self._cond:
            self._check_room(value, len(self._queued) + len(self._ready))
            partition = kwargs.get("partition", self._partition_of(key))
            msg = FakeMessage(topic, value, key, partition, kwargs=kwargs)
            self.produced.append(msg)
            self._queued.append((msg, on_delivery))
            self._after_queued(msg)
        if self.on_produce is not None:
            self.on_produce(msg)

    # hooks for scripted doubles, called under the lock

    def _check_room(self, value: bytes, held: int) -> None:
        """Raise ``BufferError`` as librdkafka does when its local queue cannot take ``value``."""
        if held >= self.capacity:
            raise BufferError("Local: Queue full")

    def _partition_of(self, key: Any) -> int:
        return hash(key) % self.partitions if key is not None else 0

    def _after_queued(self, msg: FakeMessage) -> None:
        """A message was just queued."""

    def __len__(self) -> int:
        """What librdkafka's ``len(producer)`` counts: messages not yet reported, and reports
        waiting for a poll."""
        with self._cond:
            return len(self._queued) + len(self._ready)

    def acknowledge(
        self, count: int | None = None, *, partition: int | None = None, without_offset: bool = False
    ) -> None:
        """The broker accepted the oldest ``count`` queued messages (all by default).

        With ``partition``, only that partition's messages: reports then arrive out of the
        order the messages were produced in, as they do from a real multi-partition topic.
        ``without_offset``: the answer carries no offset (``acks=0``, or a retry answered as a
        duplicate sequence), so the report's ``offset()`` is ``None`` and no offset is used up.
        """
        with self._cond:
            candidates = [
                item for item in self._queued if partition is None or item[0].partition_id == partition
            ]
            take = candidates[: count if count is not None else len(candidates)]
            taken = {id(item) for item in take}
            self._queued = [item for item in self._queued if id(item) not in taken]
            for msg, callback in take:
                if without_offset:
                    msg.offset_value = None
                else:
                    msg.offset_value = self._next_offset[msg.partition_id]
                    self._next_offset[msg.partition_id] += 1
                self._ready.append((msg, callback, None))
            self._cond.notify_all()

    def fail(self, code: int, *, fatal: bool = False, count: int | None = None) -> None:
        with self._cond:
            take = self._queued[: count if count is not None else len(self._queued)]
            del self._queued[: len(take)]
            for msg, callback in take:
                self._ready.append((msg, callback, KafkaError(code, fatal=fatal)))
            self._cond.notify_all()

    def poll(self, timeout: float = 0) -> int:
        self.poll_threads.add(threading.current_thread().name)
        with self._cond:
            if not self._ready and timeout > 0:
                self._cond.wait(timeout)
            ready, self._ready = self._ready, []
        serve_reports(ready, self._requeue)
        return len(ready)

    def _requeue(self, reports: list[ReadyReport]) -> None:
        """Reports a raising callback kept from being served go first at the next ``poll()``."""
        with self._cond:
            self._ready[:0] = reports

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self.purged = True
        self.fail(KafkaError._PURGE_QUEUE)


def serve_reports(
    ready: list[ReadyReport],
    requeue: Callable[[list[ReadyReport]], None],
) -> None:
    """Run the reports' callbacks in order; one that raises stops the round: the reports after
    it are requeued and the exception goes out of ``poll()``, as confluent-kafka does."""
    for position, (msg, callback, err) in enumerate(ready):
        try:
            callback(err, msg)
        except BaseException:
            requeue(ready[position + 1 :])
            raise


class QueueFullSignal:
    """A metrics observer that lets a test wait until a send is blocked on a full queue."""

    def __init__(self) -> None:
        self.full = asyncio.Event()
        self.events: list[tuple[str, float]] = []

    def on_event(self, name: str, value: float = 1, **dimensions: Any) -> None:
        self.events.append((name, value))
        if name == "kafka_queue_full":
            self.full.set()
