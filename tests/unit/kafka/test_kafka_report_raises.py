"""A delivery report that cannot be processed fails its message; nothing waits for it for ever.

Shardline's own report function runs inside librdkafka's ``poll()`` for every message.  Should
it raise for one message (a bug, a ``MemoryError``), librdkafka has reported that message for
good: unless the report still settles it, a ``send_many`` future never resolves, ``send()``'s
message stays in flight, and ``flush()`` and ``close(timeout)`` wait for ever.  Here a message
whose ``partition()`` raises stands for such a report, served by the delivery thread or by the
event loop's own poll; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

from producers.kafka import KafkaProducer, KafkaProducerConfig
from shardline import metrics_events as events
from shardline.errors import DeliveryError
from tests.unit.kafka.fake_kafka_producer import FakeMessage, FakeProducer

TOPIC = "telemetry"
BOUND = 5.0
SECRET = b"card-4111"
"""The unreadable message's payload: no error may quote it."""
_T = TypeVar("_T")


async def bounded(awaitable: Awaitable[_T]) -> _T:
    return await asyncio.wait_for(awaitable, BOUND)


class CountingObserver:
    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()

    def on_event(self, name: str, value: float = 1, **dimensions: Any) -> None:
        self.totals[name] += int(value)


class LoopServes(FakeProducer):
    """Reports are served only by the event loop's own polls: the delivery thread finds none."""

    def poll(self, timeout: float = 0) -> int:
        if threading.current_thread().name == "shardline-kafka-delivery":
            with self._cond:
                self._cond.wait(timeout)
            return 0
        return super().poll(timeout)


def fake_with_unreadable_report(served_by: str) -> FakeProducer:
    """A fake whose report of the message carrying :data:`SECRET` raises TypeError."""
    fake = LoopServes() if served_by == "loop" else FakeProducer()

    def spoil(msg: FakeMessage) -> None:
        if msg.value_bytes == SECRET:
            msg.unreadable = TypeError("report function bug")

    fake.on_produce = spoil
    return fake


def make(fake: FakeProducer, observer: CountingObserver) -> KafkaProducer:
    return KafkaProducer(
        TOPIC, producer=fake, config=KafkaProducerConfig(poll_timeout_s=0.02), observer=observer
    )


def serve(producer: KafkaProducer, fake: FakeProducer, served_by: str) -> None:
    """The broker acknowledges everything; the loop serves the reports itself if asked to."""
    fake.acknowledge()
    if served_by == "loop":
        assert producer._pump is not None
        producer._pump.poll_inline()  # raises nothing: the pump contains what poll() raised
        producer._pump.poll_inline()  # the reports after the one that raised


def assert_settled_as_failed(error: BaseException | None) -> None:
    assert isinstance(error, DeliveryError), error
    assert isinstance(error.__cause__, TypeError)
    assert TOPIC in str(error)
    assert SECRET.decode() not in str(error) and SECRET.decode() not in repr(error)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("served_by", ["thread", "loop"])
async def test_a_send_many_report_that_raises_fails_its_message_and_the_batch_resolves(
    served_by: str,
) -> None:
    fake = fake_with_unreadable_report(served_by)
    observer = CountingObserver()
    producer = make(fake, observer)
    try:
        future = await producer.send_many([b"m0", SECRET, b"m2"], ["k", "k", "k"])
        serve(producer, fake, served_by)
        acks = await bounded(asyncio.shield(future))
        await bounded(producer.flush())
    finally:
        await bounded(producer.close(timeout=1.0))

    assert sorted(acks.failed) == [1]
    assert_settled_as_failed(acks.failed[1])
    assert [acks[0].offset, acks[2].offset] == [0, 2]  # the rest of the batch proceeded
    assert producer.in_flight == 0
    assert observer.totals[events.KAFKA_CALLBACK_ERRORS] == 1  # surfaced once
    assert observer.totals[events.RECORDS_FAILED] == 1
    assert observer.totals[events.RECORDS_DELIVERED] == 2


@pytest.mark.timeout(30)
@pytest.mark.parametrize("served_by", ["thread", "loop"])
async def test_a_send_report_that_raises_fails_its_future_and_flush_ends(served_by: str) -> None:
    fake = fake_with_unreadable_report(served_by)
    observer = CountingObserver()
    producer = make(fake, observer)
    try:
        futures = [await producer.send(value, "k") for value in (b"m0", SECRET, b"m2")]
        serve(producer, fake, served_by)
        await bounded(asyncio.wait(futures))
        await bounded(producer.flush())
    finally:
        await bounded(producer.close(timeout=1.0))

    assert_settled_as_failed(futures[1].exception())
    assert [futures[0].result().offset, futures[2].result().offset] == [0, 2]
    assert producer.in_flight == 0
    assert observer.totals[events.KAFKA_CALLBACK_ERRORS] == 1
    assert observer.totals[events.RECORDS_FAILED] == 1
    assert observer.totals[events.RECORDS_DELIVERED] == 2


@pytest.mark.timeout(30)
async def test_close_with_a_timeout_ends_when_a_batch_report_raised() -> None:
    """``close(timeout)`` purges what is still queued; it cannot purge a message already
    reported, so the report that raised must have settled it."""
    fake = fake_with_unreadable_report("thread")
    producer = make(fake, CountingObserver())
    future = await producer.send_many([SECRET, b"m1"], ["k", "k"])
    fake.acknowledge(1)  # only the unreadable one: m1 stays queued until the purge
    await bounded(producer.close(timeout=0.2))

    acks = future.result()
    assert sorted(acks.failed) == [0, 1]
    assert_settled_as_failed(acks.failed[0])
    assert isinstance(acks.failed[1], DeliveryError) and acks.failed[1].retriable  # purged
