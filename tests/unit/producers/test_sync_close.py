"""Closing the sync facade while a close already runs, and a close that is interrupted.

Every wait is bounded (a future's, an event's or a join's timeout), so a hang fails the test
instead of sticking.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any

import pytest

from producers.sync import SyncKinesisProducer
from shardline.errors import ClosedError, DeliveryError
from tests.unit.producers.fake_kinesis import FakeKinesis

BOUND = 5.0
SLOW = {"linger": 60.0, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}
"""A linger no test outlives: a request starts only when a close flushes the buffer."""

needs_signals = pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")


class Interrupted(Exception):
    """What the test's signal handler raises in the main thread, as Ctrl-C would."""


class HeldKinesis(FakeKinesis):
    """Holds every PutRecords call at a gate that never opens, and says when one started."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.request_started = threading.Event()

    async def put_records(self, **kwargs: Any) -> dict[str, Any]:
        self.request_started.set()
        return await super().put_records(**kwargs)


def test_a_second_close_waits_for_the_first_to_settle_the_records() -> None:
    fake = HeldKinesis()
    producer = SyncKinesisProducer("s", client=fake, aggregate=False, close_timeout=0.3, **SLOW)
    future = producer.send(b"x", partition_key="k")
    first = threading.Thread(target=producer.close, daemon=True)
    first.start()
    assert fake.request_started.wait(BOUND)  # the first close is flushing
    producer.close()
    # before: the second close returned at once, the record still in flight
    assert future.done()
    with pytest.raises(DeliveryError):
        future.result(timeout=0)
    first.join(BOUND)
    assert not first.is_alive()


@needs_signals
def test_an_interrupted_close_fails_pending_records_instead_of_leaving_them_unresolved() -> None:
    fake = HeldKinesis()
    producer = SyncKinesisProducer("s", client=fake, aggregate=False, **SLOW)
    futures = [producer.send(b"x", partition_key=f"k{i}") for i in range(3)]
    with _interrupt_when(fake.request_started, signal.SIGUSR1, None), pytest.raises(Interrupted):
        producer.close()  # no timeout: waits for the gate, until interrupted
    for future in futures:
        # before: never resolved (the loop stopped mid-close); a caller waiting on it hung.
        # DeliveryError from the cancelled close; ClosedError should the cancellation take
        # longer than the close's margin (a loaded machine), when the stopped loop fails it
        with pytest.raises((DeliveryError, ClosedError)):
            future.result(timeout=BOUND)
    assert producer._loop.is_closed()
    assert not producer._thread.is_alive()


@needs_signals
def test_a_signal_handler_closing_during_a_close_lets_that_close_finish() -> None:
    fake = HeldKinesis()
    producer = SyncKinesisProducer("s", client=fake, aggregate=False, close_timeout=0.3, **SLOW)
    future = producer.send(b"x", partition_key="k")
    with _interrupt_when(fake.request_started, signal.SIGUSR1, producer), pytest.raises(Interrupted):
        producer.close()
    with pytest.raises(DeliveryError) as caught:
        future.result(timeout=BOUND)
    # settled by the first close's own timeout; before: the handler's close returned at once
    # and the interrupted first close stopped the loop mid-flush
    assert "after 0.3s" in str(caught.value)


class _interrupt_when:
    """While active: once ``event`` is set, send ``signum`` to the main thread, whose handler
    (the producer's, chaining to one raising :class:`Interrupted`, if ``producer`` is given)
    raises :class:`Interrupted` there."""

    def __init__(self, event: threading.Event, signum: int, producer: SyncKinesisProducer | None) -> None:
        self._event = event
        self._signum = signum
        self._producer = producer
        self._thread = threading.Thread(target=self._fire, daemon=True)
        self._previous: Any = None

    def _fire(self) -> None:
        if self._event.wait(BOUND):
            signal.pthread_kill(threading.main_thread().ident or 0, self._signum)

    def __enter__(self) -> None:
        def interrupt(_signum: int, _frame: Any) -> None:
            raise Interrupted

        self._previous = signal.signal(self._signum, interrupt)
        if self._producer is not None:
            self._producer.install_signal_handlers([self._signum])
        self._thread.start()

    def __exit__(self, *_exc: object) -> None:
        self._thread.join(BOUND)
        signal.signal(self._signum, self._previous)


def test_a_call_that_races_the_loop_stopping_is_refused_instead_of_queued_for_ever() -> None:
    producer = SyncKinesisProducer("s", client=FakeKinesis(), aggregate=False, **SLOW)
    outcome: list[BaseException] = []

    def flush() -> None:
        try:
            producer.flush()
        except BaseException as exc:
            outcome.append(exc)

    loop = producer._loop
    close_loop = loop.close

    def close_with_a_call_racing() -> None:
        # A flush() from another thread that passed its checks while close() ran arrives
        # now, with the loop stopped but not yet closed.
        racer = threading.Thread(target=flush, daemon=True)
        racer.start()
        racer.join(BOUND)
        assert not racer.is_alive()  # before: queued on the stopped loop, it waited for ever
        close_loop()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "close", close_with_a_call_racing)
        producer.close(timeout=BOUND)
    # the loop is closed twice: by its own thread as it ends, then by close() after the join,
    # when a new thread may get the ended loop thread's id (before: taken for the loop's own)
    assert outcome
    assert all(isinstance(error, ClosedError) for error in outcome), outcome
