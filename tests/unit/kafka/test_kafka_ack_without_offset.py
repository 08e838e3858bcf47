"""Messages the broker acknowledged without an offset: ``KafkaAck.offset`` is ``None``.

confluent-kafka's ``Message.offset()`` is ``None`` when the broker's answer carries no offset:
every message of an ``acks=0`` producer, and a retried batch an idempotent producer's broker
answers as a duplicate sequence.  The message is acknowledged all the same, through both
``send`` paths (report served inline on the loop thread or by the delivery thread) and
``send_many``; end offsets count only the offsets that are known.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from producers._kafka_delivery import DeliveryFuture, DeliveryPump
from producers.kafka import KafkaProducer, KafkaProducerConfig
from shardline.records import KafkaAck
from tests.unit.kafka.fake_kafka_producer import FakeProducer

TOPIC = "telemetry"
BOUND = 5.0


class KeyedByNumber(FakeProducer):
    """Partitions by the number a key ends with, so a test knows where each message lands."""

    def _partition_of(self, key: Any) -> int:
        return int(key.rsplit("-", 1)[1]) % self.partitions


def make(fake: FakeProducer) -> KafkaProducer:
    config = KafkaProducerConfig(idempotent=False, acks="0", poll_timeout_s=0.05)
    return KafkaProducer(TOPIC, producer=fake, config=config)


def _unexpected(error: BaseException) -> None:
    raise AssertionError(f"the pump reported {error!r}")


async def test_a_send_acknowledged_without_an_offset_resolves_to_an_ack_with_offset_none() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        future = await producer.send(b"a", "k1")
        fake.acknowledge(without_offset=True)  # served by the delivery thread
        ack = await asyncio.wait_for(future, BOUND)
    assert ack == KafkaAck(TOPIC, fake.produced[0].partition_id, None)
    assert ack.offset is None


async def test_a_report_without_an_offset_served_on_the_loop_thread_resolves_inline() -> None:
    fake = FakeProducer()
    settled: list[int] = []
    pump = DeliveryPump(
        fake.poll,
        asyncio.get_running_loop(),
        lambda *_: _unexpected(AssertionError("not a failure")),
        lambda *_: None,
        timeout=0.05,
        on_error=_unexpected,
        on_death=_unexpected,
        on_settled=settled.append,
        topic=TOPIC,
    )
    futures: list[DeliveryFuture] = [pump.new_future() for _ in range(2)]
    for future in futures:
        fake.produce(TOPIC, b"x", "k", on_delivery=future)
    fake.acknowledge(1)
    fake.acknowledge(without_offset=True)
    pump.poll_inline()
    assert settled == [2]
    partition = fake.produced[0].partition_id
    assert [future.result() for future in futures] == [
        KafkaAck(TOPIC, partition, 0),
        KafkaAck(TOPIC, partition, None),
    ]


@pytest.mark.timeout(30)
async def test_send_many_acks_without_offsets_resolve_and_end_offsets_count_known_ones() -> None:
    fake = KeyedByNumber(partitions=3)
    keys = [f"device-{i % 3}" for i in range(30)]  # partition = i % 3
    async with make(fake) as producer:
        future = await producer.send_many([b"v%d" % i for i in range(30)], keys)
        fake.acknowledge(partition=2, without_offset=True)  # no offset known in partition 2
        fake.acknowledge(4, partition=1)  # offsets 0..3, then none: the highest known is 3
        fake.acknowledge(partition=1, without_offset=True)
        fake.acknowledge(partition=0)  # every offset known: 0..9
        acks = await asyncio.wait_for(future, BOUND)

    assert acks.ok and len(acks) == 30
    assert [ack.partition for ack in acks] == [i % 3 for i in range(30)]
    assert [ack.offset for ack in acks if ack.partition == 2] == [None] * 10
    assert [ack.offset for ack in acks if ack.partition == 1] == [0, 1, 2, 3] + [None] * 6
    assert [ack.offset for ack in acks if ack.partition == 0] == list(range(10))
    assert acks.end_offsets() == {0: 10, 1: 4}
