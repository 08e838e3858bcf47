"""The sync facade's loop thread has an owner: its death fails every pending call and future.

Every blocking call below passes a timeout, so a hang fails the test instead of sticking.
"""

from __future__ import annotations

import asyncio
import signal
import threading

import pytest

from producers.sync import SyncKinesisProducer
from shardline.errors import (
    BackgroundTaskError,
    BufferFullError,
    ClosedError,
    DeliveryError,
    InvalidPartitionKeyError,
)
from shardline.records import Ack, Record
from tests.unit.producers.fake_kinesis import FakeKinesis

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}
BOUND = 5.0


def test_the_loop_thread_dying_fails_blocked_calls_and_pending_futures() -> None:
    fake = FakeKinesis()
    fake.call_errors.append(SystemExit(2))  # raised inside a request task: it ends the loop
    producer = SyncKinesisProducer("s", client=fake, aggregate=False, **FAST)
    future = producer.send(b"x", partition_key="k")
    with pytest.raises(BackgroundTaskError) as caught:
        producer.flush(timeout=BOUND)
    assert isinstance(caught.value.__cause__, SystemExit)
    with pytest.raises(BackgroundTaskError):
        future.result(timeout=BOUND)
    with pytest.raises(BackgroundTaskError):
        producer.send(b"late", partition_key="k")
    with pytest.raises(BackgroundTaskError):
        producer.close(timeout=BOUND)
    producer.close()  # a second close is quiet


def test_a_failure_of_the_async_producer_reaches_the_sync_caller() -> None:
    fake = FakeKinesis()
    fake.call_errors.append(TypeError("client bug"))
    producer = SyncKinesisProducer("s", client=fake, aggregate=False, **FAST)
    futures = [producer.send(b"x", partition_key=f"k{i}") for i in range(3)]
    batch = producer.send_many([Record(b"y", partition_key=f"b{i}") for i in range(4)])
    with pytest.raises(BackgroundTaskError) as caught:
        producer.flush(timeout=BOUND)
    assert isinstance(caught.value.__cause__, TypeError)
    for future in futures:
        with pytest.raises(BackgroundTaskError):
            future.result(timeout=BOUND)
    assert len(batch.result(timeout=BOUND).failed) == 4
    with pytest.raises(BackgroundTaskError):
        producer.close(timeout=BOUND)


def test_close_with_timeout_fails_what_is_pending_and_returns() -> None:
    fake = FakeKinesis()
    producer = SyncKinesisProducer("s", client=fake, **FAST)
    gate_set = producer._call(_install_gate(fake), BOUND)
    assert gate_set
    futures = [producer.send(b"x", partition_key=f"k{i}") for i in range(3)]
    producer.close(timeout=0.05)
    for future in futures:
        with pytest.raises(DeliveryError):
            future.result(timeout=BOUND)
    with pytest.raises(ClosedError):
        producer.send(b"late", partition_key="k")


def test_healthy_round_trip_still_acks() -> None:
    with SyncKinesisProducer("s", client=FakeKinesis(), **FAST) as producer:
        ack = producer.send(b"x", partition_key="k").result(timeout=BOUND)
        producer.flush(timeout=BOUND)
    assert isinstance(ack, Ack)


async def _install_gate(fake: FakeKinesis) -> bool:
    """A gate that never opens, created on the producer's loop: requests hang."""
    fake.gate = asyncio.Event()
    return True


def test_refused_sends_leave_nothing_tracked_and_calls_after_close_say_closed() -> None:
    fake = FakeKinesis()
    fake.gate = asyncio.Event()  # nothing is answered: the buffer stays full
    producer = SyncKinesisProducer("s", client=fake, aggregate=False, buffer_max_records=1, **FAST)
    for _ in range(100):
        with pytest.raises(InvalidPartitionKeyError):
            producer.send(b"x", partition_key="")
        with pytest.raises(InvalidPartitionKeyError):
            producer.send_many([b"x"], [""])
    producer.send(b"fills the buffer", partition_key="k")
    with pytest.raises(BufferFullError):
        producer.send(b"no room", partition_key="k", block=False)
    # before: every refused call left a future tracked until close (10,000 calls, 10,000 futures)
    assert len(producer._pending) == 1
    producer.close(timeout=0.1)
    with pytest.raises(ClosedError):
        producer.flush(timeout=BOUND)  # before: RuntimeError("Event loop is closed")


class _PreviousHandlerRan(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_the_signal_handler_goes_on_when_closing_a_failed_producer_raises() -> None:
    def previous(_signum: int, _frame: object) -> None:
        raise _PreviousHandlerRan

    fake = FakeKinesis()
    fake.call_errors.append(TypeError("client bug"))
    producer = SyncKinesisProducer("s", client=fake, aggregate=False, **FAST)
    with pytest.raises(BackgroundTaskError):
        producer.send(b"x", partition_key="k").result(timeout=BOUND)
    saved = signal.signal(signal.SIGUSR1, previous)
    try:
        producer.install_signal_handlers([signal.SIGUSR1])
        # before: the close's BackgroundTaskError escaped the handler; the previous one never ran
        with pytest.raises(_PreviousHandlerRan):
            signal.raise_signal(signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, saved)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR2"), reason="needs SIGUSR2")
def test_without_a_previous_handler_a_failed_producer_still_exits_with_128_plus_the_signal() -> None:
    fake = FakeKinesis()
    fake.call_errors.append(TypeError("client bug"))
    producer = SyncKinesisProducer("s", client=fake, aggregate=False, **FAST)
    with pytest.raises(BackgroundTaskError):
        producer.send(b"x", partition_key="k").result(timeout=BOUND)
    saved = signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    try:
        producer.install_signal_handlers([signal.SIGUSR2])
        with pytest.raises(SystemExit) as caught:
            signal.raise_signal(signal.SIGUSR2)
        assert caught.value.code == 128 + signal.SIGUSR2  # before: BackgroundTaskError, status 1
    finally:
        signal.signal(signal.SIGUSR2, saved)


def test_close_from_a_thread_started_after_the_loop_thread_died_reports_the_death() -> None:
    fake = FakeKinesis()
    fake.call_errors.append(SystemExit(2))  # raised inside a request task: it ends the loop
    producer = SyncKinesisProducer("s", client=fake, aggregate=False, **FAST)
    with pytest.raises(BackgroundTaskError):
        producer.send(b"x", partition_key="k").result(timeout=BOUND)
    producer._thread.join(BOUND)
    assert not producer._thread.is_alive()
    dead_id = producer._thread.ident
    outcomes: list[BaseException | None] = []

    def close_if_given_the_dead_id(last: bool) -> None:
        if threading.get_ident() != dead_id and not last:
            return
        try:
            producer.close(timeout=BOUND)
            outcomes.append(None)
        except BaseException as exc:
            outcomes.append(exc)

    # A new thread often gets the ended loop thread's id: before, it was taken for the loop's
    # own thread, so close() started a close on the dead loop and returned quietly.
    for attempt in range(50):
        closer = threading.Thread(target=close_if_given_the_dead_id, args=(attempt == 49,))
        closer.start()
        closer.join(BOUND)
        assert not closer.is_alive()
        if outcomes:
            break
    assert len(outcomes) == 1
    assert isinstance(outcomes[0], BackgroundTaskError)
