"""The future ``send()`` returns: it holds the delivered position and builds its KafkaAck when read.

Every way asyncio reads a future (await, ``result()``, gather, wait_for, shield, wait, done
callbacks) must see the same :class:`~shardline.records.KafkaAck` an eagerly built ack had,
failures must raise the mapped error, and cancellation must behave as for a plain future.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import threading
import weakref
from typing import Any

import pytest
from confluent_kafka import KafkaError

from producers._kafka_delivery import DeliveryFuture, DeliveryPump, Report
from producers.kafka import KafkaProducer, KafkaProducerConfig
from shardline.errors import DeliveryError
from shardline.records import KafkaAck
from tests.unit.kafka.fake_kafka_producer import FakeProducer

TOPIC = "telemetry"
BOUND = 5.0


def make(fake: FakeProducer) -> KafkaProducer:
    return KafkaProducer(TOPIC, producer=fake, config=KafkaProducerConfig(poll_timeout_s=0.05))


def _unexpected(error: BaseException) -> None:
    raise AssertionError(f"the pump reported {error!r}")


def expected(fake: FakeProducer, index: int) -> KafkaAck:
    message = fake.produced[index]
    return KafkaAck(TOPIC, message.partition_id, message.offset_value)


async def test_awaiting_builds_a_frozen_kafka_ack_equal_to_an_eager_one() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        future = await producer.send(b"a", "k1")
        assert isinstance(future, DeliveryFuture)
        fake.acknowledge()
        ack = await asyncio.wait_for(future, BOUND)
        assert type(ack) is KafkaAck
        assert ack == expected(fake, 0)
        assert hash(ack) == hash(expected(fake, 0))
        assert (ack.topic, ack.partition, ack.offset) == (TOPIC, fake.produced[0].partition_id, 0)
        assert future.result() == ack  # every read builds an equal ack
        assert await future == ack
        with pytest.raises(dataclasses.FrozenInstanceError):
            ack.offset = 7  # type: ignore[misc]
        assert repr(ack) == repr(expected(fake, 0))


async def test_a_task_awaiting_before_delivery_gets_the_ack() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        future = await producer.send(b"a", "k1")

        async def wait() -> KafkaAck:
            return await future

        waiter = asyncio.create_task(wait())
        await asyncio.sleep(0)  # let the task reach its await (ordering, not timing)
        assert not waiter.done()
        fake.acknowledge()
        assert await asyncio.wait_for(waiter, BOUND) == expected(fake, 0)


async def test_gather_wait_for_shield_wait_and_callbacks_read_the_ack() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        futures = [await producer.send(b"%d" % i, str(i)) for i in range(4)]
        seen: list[KafkaAck] = []
        futures[3].add_done_callback(lambda done: seen.append(done.result()))
        shielded = asyncio.shield(futures[2])
        fake.acknowledge()
        gathered = await asyncio.wait_for(asyncio.gather(*futures[:2]), BOUND)
        assert gathered == [expected(fake, 0), expected(fake, 1)]
        assert await asyncio.wait_for(shielded, BOUND) == expected(fake, 2)
        done, pending = await asyncio.wait([futures[3]], timeout=BOUND)
        assert not pending
        assert done.pop().result() == expected(fake, 3)
        await asyncio.wait_for(producer.flush(), BOUND)
        await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert seen == [expected(fake, 3)]


async def test_a_failed_delivery_raises_its_error_on_every_read() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        failing = await producer.send(b"x", "k")
        fake.fail(KafkaError._MSG_TIMED_OUT)
        healthy = await producer.send(b"y", "k")
        fake.acknowledge()
        seen: list[BaseException | None] = []
        failing.add_done_callback(lambda done: seen.append(done.exception()))
        results = await asyncio.wait_for(asyncio.gather(failing, healthy, return_exceptions=True), BOUND)
        assert isinstance(results[0], DeliveryError)
        assert results[1] == expected(fake, 1)
        with pytest.raises(DeliveryError):
            await failing
        with pytest.raises(DeliveryError):
            failing.result()
        with pytest.raises(DeliveryError):
            await asyncio.wait_for(failing, BOUND)
        await asyncio.sleep(0)
    assert isinstance(seen[0], DeliveryError)


async def test_reading_a_pending_future_is_an_invalid_state() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        future = await producer.send(b"x", "k")
        with pytest.raises(asyncio.InvalidStateError):
            future.result()
        fake.acknowledge()
        await asyncio.wait_for(future, BOUND)


async def test_a_cancelled_future_stays_cancelled_and_its_report_is_still_counted() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        cancelled = await producer.send(b"x", "k")
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        with pytest.raises(asyncio.CancelledError):
            cancelled.result()
        fake.acknowledge()
        await asyncio.wait_for(producer.flush(), BOUND)  # the report of the cancelled send settles it
        assert cancelled.cancelled()
        assert producer.in_flight == 0


async def test_cancelling_a_task_awaiting_the_future_cancels_the_future_and_flush_still_ends() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        future = await producer.send(b"x", "k")

        async def wait() -> KafkaAck:
            return await future

        waiter = asyncio.create_task(wait())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiter, BOUND)
        assert future.cancelled()
        fake.acknowledge()
        await asyncio.wait_for(producer.flush(), BOUND)
        assert producer.in_flight == 0


async def test_timing_out_wait_for_cancels_the_future_as_for_any_future() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        future = await producer.send(b"x", "k")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(future, 0)
        assert future.cancelled()
        fake.acknowledge()
        await asyncio.wait_for(producer.flush(), BOUND)


async def test_reports_served_on_the_loop_thread_resolve_inline_and_are_counted_once_per_poll() -> None:
    """The pump's inline path (``poll(0)`` on the loop thread), driven without its thread."""
    fake = FakeProducer()
    settled: list[int] = []
    inline_failures: list[tuple[DeliveryFuture, Any]] = []
    rounds: list[list[Report]] = []
    pump = DeliveryPump(
        fake.poll,
        asyncio.get_running_loop(),
        lambda future, err, _msg: inline_failures.append((future, err)),
        lambda reports, _batches: rounds.append(reports),
        timeout=0.05,
        on_error=_unexpected,
        on_death=_unexpected,
        on_settled=settled.append,
        topic=TOPIC,
    )
    futures = [pump.new_future() for _ in range(3)]
    for index, future in enumerate(futures):
        fake.produce(TOPIC, b"%d" % index, "k", on_delivery=future)
    fake.acknowledge(2)
    fake.fail(KafkaError._MSG_TIMED_OUT)
    pump.poll_inline()
    assert settled == [2]
    assert [future.result() for future in futures[:2]] == [expected(fake, 0), expected(fake, 1)]
    assert inline_failures == [(futures[2], inline_failures[0][1])]
    assert inline_failures[0][1].code() == KafkaError._MSG_TIMED_OUT
    assert not futures[2].done()  # the owner's resolve_inline decides
    assert rounds == []


async def test_reports_served_on_another_thread_are_handed_over_not_resolved() -> None:
    fake = FakeProducer()
    pump = DeliveryPump(
        fake.poll,
        asyncio.get_running_loop(),
        lambda *_: pytest.fail("not on the loop thread"),
        lambda *_: None,
        timeout=0.05,
        on_error=_unexpected,
        on_death=_unexpected,
        on_settled=lambda _n: pytest.fail("not on the loop thread"),
        topic=TOPIC,
    )
    future = pump.new_future()
    fake.produce(TOPIC, b"x", "k", on_delivery=future)
    fake.acknowledge()
    served = await asyncio.wait_for(asyncio.to_thread(fake.poll, 0), BOUND)
    assert served == 1
    assert not future.done()
    reports = pump._reports  # the delivery thread's round list
    assert [(report[0], report[1]) for report in reports] == [(future, None)]
    future.deliver(reports[0][2].partition(), reports[0][2].offset())
    assert future.result() == expected(fake, 0)


async def test_the_delivery_thread_keeps_no_report_once_its_round_is_handed_over() -> None:
    """A report holds its message (value and key copies): nothing may keep it past its round."""
    fake = FakeProducer()
    handed_over = asyncio.Event()
    polls_after_hand_over: list[int] = []
    polled_again = threading.Event()

    def poll(timeout: float) -> int:
        if handed_over.is_set():
            polls_after_hand_over.append(1)
            polled_again.set()
        return fake.poll(timeout)

    def on_round(reports: list[Report], _batches: list[Any]) -> None:
        for future, err, msg in reports:
            assert err is None
            future.deliver(msg.partition(), msg.offset())
        handed_over.set()

    pump = DeliveryPump(
        poll,
        asyncio.get_running_loop(),
        lambda *_: pytest.fail("not on the loop thread"),
        on_round,
        timeout=0.01,
        on_error=_unexpected,
        on_death=_unexpected,
        on_settled=lambda _n: None,
        topic=TOPIC,
    )
    pump.start()
    try:
        future = pump.new_future()
        fake.produce(TOPIC, b"x", "k", on_delivery=future)
        partition = fake.produced[-1].partition_id
        message = weakref.ref(fake.produced.pop())
        fake.acknowledge()
        await asyncio.wait_for(handed_over.wait(), BOUND)
        # The thread has gone round its loop once more: whatever it still holds, it holds now.
        assert await asyncio.to_thread(polled_again.wait, BOUND)
        assert future.result() == KafkaAck(TOPIC, partition, 0)
        assert message() is None
    finally:
        pump.stop()
        await asyncio.to_thread(pump.join, BOUND)


async def test_a_delivered_future_holds_no_ack_until_read() -> None:
    """One object per held message: the ack exists only while the caller uses it."""
    fake = FakeProducer()
    async with make(fake) as producer:
        future = await producer.send(b"x", "k")
        fake.acknowledge()
        await asyncio.wait_for(producer.flush(), BOUND)
        assert future.done()
        assert not [held for held in gc.get_referents(future) if isinstance(held, KafkaAck)]
        assert await future == expected(fake, 0)
        # Reading does not attach the ack to the future either.
        assert not [held for held in gc.get_referents(future) if isinstance(held, KafkaAck)]
