"""Bridges librdkafka delivery reports to asyncio futures.

librdkafka reports deliveries only from inside ``poll()``, and confluent-kafka re-acquires
the GIL for every single report.  So *which thread polls* decides the cost:

* While the event loop is busy sending, the loop thread itself calls ``poll(0)`` every few
  sends (like the raw client's ``produce(); poll(0)``); reports are resolved inline, with no
  thread hand-off and no GIL ping-pong.  The background thread steps aside meanwhile.
* When the loop is idle (awaiting, flushing, waiting for queue space), the background thread
  blocks in ``poll(timeout)`` — it wakes at once when reports arrive, so there is no busy
  loop — collects one round of reports and hands the whole list to the loop with a single
  ``call_soon_threadsafe``.  Rounds that only advanced ``send_many`` batches are handed over
  too (with the batches that completed), so a send waiting for queue space wakes up.
* When librdkafka holds nothing (no message queued or in flight, no report or client event
  waiting: ``len(producer) == 0``), the thread waits on its own event instead of inside
  ``poll()``, which nothing could wake before its timeout.  The loop going idle after a send,
  or ``stop()``, sets the event (a send itself does not: the loop polls while it is busy, and
  waking the thread only to have it wait for the loop cost ~6% of the CPU of a steady 200
  messages/s), so ``close()`` right after the last acknowledgement does not sit out a poll timeout
  (it took 100 ms, 8% of the wall time of a 1,000,000-message ``send_many`` run); client
  callbacks are still served every ``timeout`` meanwhile.

librdkafka runs the client's callbacks (``error_cb``, ``oauth_cb``, ``stats_cb``) from inside
``poll()`` too, and confluent-kafka re-raises from ``poll()`` whatever such a callback raised
(an MSK IAM token that could not be signed, an observer bug).  The pump therefore owns every
``poll()``: an exception raised from one is handed to ``on_error`` on the loop and polling
goes on, so a failing callback can never stop delivery reports; should the thread die anyway
(a ``SystemExit`` raised in a callback), ``on_death`` tells the owner, which fails what is
pending instead of letting ``flush()`` wait forever.  Shardline's own delivery reports raise
out of ``poll()`` the same way when one cannot be processed, after settling its message as
failed: librdkafka reports a message once, so nothing else would.

A report is routed by the thread it arrives on: inline on the loop thread, into the
thread's private round list otherwise, so the list never needs a lock.  The future of a
``send()`` is its own delivery callback (:attr:`DeliveryPump.future_class`): no closure or
bound method is allocated per message, which also keeps the garbage collector's work down.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Generator
from typing import Any

from shardline.records import KafkaAck

__all__ = ["DeliveryFuture", "DeliveryPump", "PumpError", "Report"]

Report = tuple["DeliveryFuture", Any, Any]
"""(future, KafkaError or None, Message) of one delivered or failed message."""

ResolveOne = Callable[["DeliveryFuture", Any, Any], None]
PumpError = Callable[[BaseException], None]
"""Told (on the loop thread) what a ``poll()`` raised, or what ended the pump's thread."""


class _KafkaAckDraft:
    """A :class:`~shardline.records.KafkaAck` under construction: same slots, plain stores.

    Assigning ``__class__ = KafkaAck`` once the fields are set turns it into the regular
    frozen ack, cheaper than its slot setters on a path run once per message read.
    """

    __slots__ = KafkaAck.__slots__
    topic: str
    partition: int
    offset: int | None


_future_result = asyncio.Future.result


class DeliveryFuture(asyncio.Future[KafkaAck]):
    """The future of one ``send()``: holds the delivered message's partition and offset.

    Its :class:`~shardline.records.KafkaAck` is built when the result is read (``await``,
    :meth:`result`, so also ``gather``, ``wait_for``, ``shield`` and done callbacks).
    Callers keep ``send()`` futures alive until they await them, and the garbage collector
    walks every object they keep: an ack built at delivery doubled the objects per message.
    Each producer's subclass (:func:`_delivery_future_class`) sets :attr:`topic` and makes
    instances librdkafka ``on_delivery`` callbacks.
    """

    __slots__ = ("_offset", "_partition")

    topic: str = ""
    _partition: int
    _offset: int | None
    """``None`` when the broker's answer carried no offset (see :class:`KafkaAck`)."""

    def deliver(self, partition: int, offset: int | None) -> None:
        """Resolve with the message's position (loop thread; not already done)."""
        self._partition = partition
        self._offset = offset
        self.set_result(None)  # type: ignore[arg-type]

    def result(self) -> KafkaAck:
        """The message's :class:`~shardline.records.KafkaAck`, or raise its delivery error."""
        _future_result(self)  # raises the error, CancelledError or InvalidStateError
        ack = _KafkaAckDraft()
        ack.topic = self.topic
        ack.partition = self._partition
        ack.offset = self._offset
        ack.__class__ = KafkaAck  # type: ignore[assignment]
        return ack  # type: ignore[return-value]

    def __await__(self) -> Generator[Any, None, KafkaAck]:
        if not self.done():
            self._asyncio_future_blocking = True
            yield self
            if not self.done():
                raise RuntimeError("await wasn't used with future")
        # result() inlined: awaiting is the usual read, once per message.
        _future_result(self)
        ack = _KafkaAckDraft()
        ack.topic = self.topic
        ack.partition = self._partition
        ack.offset = self._offset
        ack.__class__ = KafkaAck  # type: ignore[assignment]
        return ack  # type: ignore[return-value]

    __iter__ = __await__


def _delivery_future_class(
    loop_thread: int,
    topic: str,
    resolve_inline: ResolveOne,
    append: Callable[[Report], None],
    settled: Callable[[None], None],
) -> type[DeliveryFuture]:
    """A :class:`DeliveryFuture` subclass for one producer, whose instances are its callbacks.

    The common report -- a success served on the loop thread -- is handled right here: the
    position is stored and the report only counted (one ``list.append``); the owner's
    bookkeeping for the whole poll runs once after it (:meth:`DeliveryPump.settle`).
    Failures, cancelled futures and reports served on the delivery thread take the general
    paths.  Should reading the message raise, the owner fails the future with the exception
    (``resolve_inline`` takes it in place of a ``KafkaError``) and it goes on out of
    ``poll()``, to the pump's ``on_error``: librdkafka never reports the message again.
    """
    get_ident = threading.get_ident
    topic_ = topic

    class ProducerDeliveryFuture(DeliveryFuture):
        __slots__ = ()
        topic = topic_

        def __call__(self, err: Any, msg: Any) -> None:
            if get_ident() == loop_thread:
                if err is None and not self.done():
                    try:
                        self._partition = msg.partition()
                        self._offset = msg.offset()
                    except Exception as exc:
                        resolve_inline(self, exc, msg)
                        raise
                    self.set_result(None)  # type: ignore[arg-type]
                    settled(None)
                else:
                    resolve_inline(self, err, msg)
            else:
                append((self, err, msg))

    return ProducerDeliveryFuture


class DeliveryPump:
    """Polls a confluent-kafka producer from the right thread and routes its reports."""

    __slots__ = (
        "_completed",
        "_idle",
        "_loop",
        "_on_death",
        "_on_error",
        "_on_round",
        "_on_settled",
        "_pending",
        "_poll",
        "_reports",
        "_settled",
        "_stopping",
        "_thread",
        "_timeout",
        "_wake",
        "busy",
        "future_class",
        "loop_thread",
        "new_future",
    )

    def __init__(
        self,
        poll: Callable[[float], int],
        loop: asyncio.AbstractEventLoop,
        resolve_inline: ResolveOne,
        on_round: Callable[[list[Report], list[Any]], None],
        *,
        timeout: float,
        on_error: PumpError,
        on_death: PumpError,
        on_settled: Callable[[int], None],
        topic: str,
        pending: Callable[[], int] | None = None,
        name: str = "shardline-kafka-delivery",
    ) -> None:
        """``pending`` is the producer's ``__len__`` (messages and events librdkafka holds);
        without it the thread always waits inside ``poll(timeout)``."""
        self._poll = poll
        self._pending = pending
        self._loop = loop
        self._on_round = on_round
        self._on_error = on_error
        self._on_death = on_death
        self._on_settled = on_settled
        self._settled: list[None] = []
        self._timeout = timeout
        self._reports: list[Report] = []
        self._completed: list[Any] = []
        self.busy = False
        self._idle = threading.Event()
        self._idle.set()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.loop_thread = loop_thread = threading.get_ident()
        self.future_class = _delivery_future_class(
            loop_thread, topic, resolve_inline, self._reports.append, self._settled.append
        )
        self.new_future: Callable[[], DeliveryFuture] = functools.partial(self.future_class, loop=loop)
        """A delivery future of this loop (given explicitly: a future looking its loop up costs a
        ``getpid()`` system call in CPython 3.11's fork check, about 0.2 us per message)."""

    def hand_over(self, batch: Any) -> None:
        """A ``send_many`` batch got its last report on the delivery thread."""
        self._completed.append(batch)

    def start(self) -> None:
        self._thread.start()

    def mark_busy(self) -> None:
        """Called on the loop thread by ``send``: the loop polls inline until it next yields."""
        if not self.busy:
            self.busy = True
            self._idle.clear()
            self._loop.call_soon(self._mark_idle)

    def _mark_idle(self) -> None:
        self.busy = False
        self._idle.set()
        self._wake.set()

    def poll_inline(self) -> None:
        """Serve pending reports on the loop thread without blocking (callbacks' errors contained)."""
        try:
            served = self._poll(0)
        except Exception as exc:  # noqa: BLE001 - a client callback's error is not the caller's
            served = 1  # it may have served reports before the callback raised
            self._on_error(exc)
        if served or self._settled:
            self.settle()

    def settle(self) -> None:
        """Tell the owner how many futures the loop thread's last poll resolved successfully.

        Told even of none: reports of ``send_many`` batches served by the poll made room too,
        and a send waiting for it must hear.
        """
        settled = len(self._settled)
        self._settled.clear()
        self._on_settled(settled)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # noqa: BLE001 - the owner must hear of any death
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to tell
                if self._reports or self._completed:
                    self._hand_over_round()  # what the fatal poll() served: not dropped
                if not self._stopping.is_set():
                    self._loop.call_soon_threadsafe(self._on_death, exc)

    def _hand_over_round(self) -> None:
        """Hand the thread's round of reports and completed batches to the loop, and start a new
        one (RuntimeError: the loop is closed)."""
        round_, done = self._reports.copy(), self._completed.copy()
        self._reports.clear()
        self._completed.clear()
        # Locals of this call, so not kept until the next round: each report holds its message.
        self._loop.call_soon_threadsafe(self._on_round, round_, done)

    def _serve(self) -> None:
        poll, reports, completed, timeout = self._poll, self._reports, self._completed, self._timeout
        call_soon = self._loop.call_soon_threadsafe
        on_error = self._on_error
        stopping, idle, wake, pending = self._stopping, self._idle, self._wake, self._pending
        while not stopping.is_set():
            if self.busy:
                idle.wait(timeout)
                continue
            wait = timeout
            if pending is not None:
                wake.clear()  # before the check: the loop idling after a later send sets it again
                if not pending():
                    wake.wait(timeout)
                    if stopping.is_set():
                        break
                    wait = 0  # a send woke us (its reports come) or a timeout: client callbacks
            try:
                served = poll(wait)
            except Exception as exc:  # noqa: BLE001 - error_cb / oauth_cb raised inside poll()
                served = 1  # it may have served reports before the callback raised
                try:
                    call_soon(on_error, exc)
                except RuntimeError:
                    return
            if served or reports or completed:
                try:
                    self._hand_over_round()
                except RuntimeError:  # the loop is closed: nobody is left to tell
                    return

    @property
    def stopping(self) -> bool:
        """The thread was asked to stop: nothing may be handed to the client for it any more."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Ask the thread to end after its current poll round (at most ``timeout`` later)."""
        self._stopping.set()
        self._idle.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
