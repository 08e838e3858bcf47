"""``close(timeout)`` ends at its timeout also while sends wait for room in a full queue.

It purges what is still queued when the timeout passes, then flushes the purged reports.
Sends waiting for room used to wake in the room the purge made, queue their messages and make
that flush wait for them: a whole delivery timeout past ``timeout`` (here, a broker that never
answers: for good).  They now fail with ClosedError and nothing is queued after the purge.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from producers._kafka_config import KafkaProducerConfig
from producers.kafka import KafkaProducer
from shardline.errors import ClosedError, DeliveryError
from tests.unit.kafka.fake_kafka_producer import FakeProducer, QueueFullSignal

BOUND = 5.0


async def _full_producer() -> tuple[KafkaProducer, FakeProducer, QueueFullSignal, list[Any]]:
    fake = FakeProducer(capacity=2)  # a broker that never answers: nothing is acknowledged
    signal = QueueFullSignal()
    producer = KafkaProducer(
        "t", producer=fake, config=KafkaProducerConfig(poll_timeout_s=0.02), observer=signal
    )
    queued = [await producer.send(b"a", "k"), await producer.send(b"b", "k")]
    return producer, fake, signal, queued


async def _check_queued_ones_fail(queued: list[Any]) -> None:
    for future in queued:
        with pytest.raises(DeliveryError):
            await asyncio.wait_for(future, BOUND)


async def test_a_send_waiting_for_room_fails_and_close_ends() -> None:
    producer, fake, signal, queued = await _full_producer()
    waiting = asyncio.ensure_future(producer.send(b"c", "k"))
    await asyncio.wait_for(signal.full.wait(), BOUND)

    await asyncio.wait_for(producer.close(timeout=0.05), BOUND)

    with pytest.raises(ClosedError):
        await asyncio.wait_for(waiting, BOUND)
    assert [msg.value_bytes for msg in fake.produced] == [b"a", b"b"]
    await _check_queued_ones_fail(queued)


async def test_a_send_many_waiting_for_room_fails_its_rest_and_close_ends() -> None:
    producer, fake, signal, queued = await _full_producer()
    waiting = asyncio.ensure_future(producer.send_many([b"c", b"d"], ["k", "k"]))
    await asyncio.wait_for(signal.full.wait(), BOUND)

    await asyncio.wait_for(producer.close(timeout=0.05), BOUND)

    acks = await asyncio.wait_for(await asyncio.wait_for(waiting, BOUND), BOUND)
    assert sorted(acks.failed) == [0, 1]
    assert all(isinstance(error, ClosedError) for error in acks.failed.values())
    assert [msg.value_bytes for msg in fake.produced] == [b"a", b"b"]
    await _check_queued_ones_fail(queued)


async def test_a_send_woken_for_room_as_close_begins_is_reported_before_close_returns() -> None:
    """The report that lets close()'s flush end can also wake a send waiting for room, which
    then queues its message.  close() used to stop the delivery thread right after that
    flush, with the message queued and its future never resolved; it now waits for such
    sends too (here the broker never answers the late message, so the timeout purges it)."""
    fake = FakeProducer(capacity=1)
    signal = QueueFullSignal()
    producer = KafkaProducer(
        "t", producer=fake, config=KafkaProducerConfig(poll_timeout_s=0.02), observer=signal
    )
    first = await producer.send(b"a", "k")
    waiting = asyncio.ensure_future(producer.send(b"b", "k"))
    await asyncio.wait_for(signal.full.wait(), BOUND)

    closing = asyncio.ensure_future(producer.close(timeout=0.05))
    await asyncio.sleep(0)  # close() begins: its flush is scheduled, not run yet
    fake.acknowledge()
    assert producer._pump is not None
    producer._pump.poll_inline()  # "a" reported before that flush runs: "b"'s send wakes after it
    await asyncio.wait_for(closing, BOUND)

    assert (await first).offset == 0
    late = await asyncio.wait_for(waiting, BOUND)  # queued: the send returned its future
    assert late.done(), "close() returned with a queued message's future unresolved"
    with pytest.raises(DeliveryError):
        late.result()
    assert len(fake) == 0
