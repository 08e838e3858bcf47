"""KafkaProducer against an in-memory confluent-kafka double: validation, futures, back-pressure."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from producers import keys
from producers.kafka import KafkaProducer, KafkaProducerConfig
from shardline.errors import (
    ClosedError,
    ConfigurationError,
    DeliveryError,
    InvalidDataError,
    InvalidPartitionKeyError,
    MessageTooLargeError,
    SerializationError,
    ShardlineError,
    ValidationError,
)
from shardline.kafka_config import EVENT_ID_HEADER
from shardline.records import KafkaAck, Record
from tests.unit.kafka.fake_kafka_producer import FakeProducer, QueueFullSignal

TOPIC = "telemetry"


def make(fake: FakeProducer, **options: Any) -> KafkaProducer:
    config = options.pop("config", KafkaProducerConfig(poll_timeout_s=0.05))
    return KafkaProducer(TOPIC, producer=fake, config=config, **options)


async def test_send_returns_a_future_resolved_with_the_delivery_offset() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        first = await producer.send(b"a", "k1")
        second = await producer.send(b"b", "k1")
        fake.acknowledge()
        acks = await asyncio.gather(first, second)

    assert all(isinstance(ack, KafkaAck) for ack in acks)
    assert [ack.offset for ack in acks] == [0, 1]
    assert acks[0] == KafkaAck(TOPIC, fake.produced[0].partition_id, 0)
    assert [m.key_value for m in fake.produced] == ["k1", "k1"]


async def test_send_and_wait_returns_the_ack() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        queued = asyncio.Event()
        fake.on_produce = lambda _msg: queued.set()
        task = asyncio.create_task(producer.send_and_wait(b"x", b"key"))
        await queued.wait()
        assert not task.done()
        fake.acknowledge()
        ack = await task
    assert ack.topic == TOPIC


@pytest.mark.parametrize(
    ("value", "key", "error"),
    [
        ("text", None, InvalidDataError),
        (123, None, InvalidDataError),
        (None, None, InvalidDataError),
        (b"x" * 1_000_001, None, MessageTooLargeError),
        (b"x" * 999_990, "k" * 20, MessageTooLargeError),
        (b"ok", 42, InvalidPartitionKeyError),
    ],
)
async def test_bad_input_raises_a_typed_error_before_anything_is_queued(
    value: Any, key: Any, error: type[Exception]
) -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        with pytest.raises(error):
            await producer.send(value, key)
        assert producer.in_flight == 0
    assert fake.produced == []


async def test_bad_partition_headers_and_timestamp_are_rejected_before_produce() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        with pytest.raises(ValidationError):
            await producer.send(b"x", partition=-1)
        with pytest.raises(ValidationError):
            await producer.send(b"x", headers={"h": "not-bytes"})  # type: ignore[dict-item]
        with pytest.raises(ValidationError):
            await producer.send(b"x", timestamp="yesterday")  # type: ignore[arg-type]
    assert fake.produced == []


async def test_serializer_and_key_strategy_apply_to_objects() -> None:
    fake = FakeProducer()
    producer = make(fake, serializer=lambda v: json.dumps(v).encode(), key_strategy=keys.field("device"))
    async with producer:
        future = await producer.send({"device": "d-7", "t": 21.5})
        fake.acknowledge()
        await future
    assert fake.produced[0].key_value == "d-7"
    assert json.loads(fake.produced[0].value_bytes) == {"device": "d-7", "t": 21.5}


async def test_failing_serializer_is_a_serialization_error() -> None:
    fake = FakeProducer()

    def broken(value: Any) -> bytes:
        raise TypeError("cannot encode")

    async with make(fake, serializer=broken) as producer:
        with pytest.raises(SerializationError):
            await producer.send(object())
    assert fake.produced == []


async def test_record_carries_key_headers_timestamp_and_event_id() -> None:
    fake = FakeProducer()
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    record = Record(b"payload", partition_key="dev-1", event_id="evt-9", timestamp=when, headers={"h": b"v"})
    async with make(fake) as producer:
        future = await producer.send(record)
        fake.acknowledge()
        await future
    message = fake.produced[0]
    assert message.key_value == "dev-1"
    assert dict(message.kwargs["headers"]) == {"h": b"v", EVENT_ID_HEADER: b"evt-9"}
    assert message.kwargs["timestamp"] == int(when.timestamp() * 1000)


async def test_full_local_queue_is_back_pressure_and_keeps_send_order() -> None:
    fake = FakeProducer(capacity=2)
    signal = QueueFullSignal()
    async with make(fake, observer=signal) as producer:
        futures = [await producer.send(b"0", "k"), await producer.send(b"1", "k")]
        third = asyncio.create_task(producer.send(b"2", "k"))
        fourth = asyncio.create_task(producer.send(b"3", "k"))
        await signal.full.wait()
        assert not third.done()
        assert [m.value_bytes for m in fake.produced] == [b"0", b"1"]
        fake.acknowledge()  # room again: the waiting sends go in, in order
        futures += [await third, await fourth]
        fake.acknowledge()
        acks = await asyncio.gather(*futures)
    assert [m.value_bytes for m in fake.produced] == [b"0", b"1", b"2", b"3"]
    assert [ack.offset for ack in acks] == [0, 1, 2, 3]


async def test_undeliverable_message_fails_its_future_with_a_delivery_error() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        future = await producer.send(b"x", "k")
        fake.fail(KafkaError._MSG_TIMED_OUT)
        with pytest.raises(DeliveryError):
            await future


async def test_broker_rejection_is_mapped_to_the_shared_error_tree() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        future = await producer.send(b"x", "k")
        fake.fail(KafkaError.MSG_SIZE_TOO_LARGE)
        with pytest.raises(ShardlineError):
            await future


async def test_fatal_error_fails_later_sends_at_once() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        future = await producer.send(b"x", "k")
        fake.fail(KafkaError._FATAL, fatal=True)
        with pytest.raises(ShardlineError) as first:
            await future
        with pytest.raises(ShardlineError) as later:
            await producer.send(b"y", "k")
    assert later.value is first.value
    assert len(fake.produced) == 1


async def test_synchronous_produce_refusal_is_typed() -> None:
    fake = FakeProducer()
    fake.raise_on_produce = KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    async with make(fake) as producer:
        with pytest.raises(MessageTooLargeError):
            await producer.send(b"x", "k")
        assert producer.in_flight == 0


async def test_flush_waits_for_every_report_delivered_from_the_poll_thread() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        futures = [await producer.send(b"%d" % i, str(i % 3)) for i in range(50)]
        flushing = asyncio.create_task(producer.flush())
        assert producer.in_flight == 50
        fake.acknowledge(20)
        fake.fail(KafkaError._MSG_TIMED_OUT)
        await flushing
        assert all(f.done() for f in futures)
        assert sum(1 for f in futures if f.exception() is None) == 20
    assert "shardline-kafka-delivery" in fake.poll_threads


async def test_close_with_timeout_purges_and_reports_every_message() -> None:
    fake = FakeProducer()
    producer = make(fake)
    futures = [await producer.send(b"x", "k") for _ in range(5)]
    await producer.close(timeout=0.01)
    assert fake.purged
    assert all(isinstance(f.exception(), DeliveryError) for f in futures)
    with pytest.raises(ClosedError):
        await producer.send(b"x")


async def test_close_after_the_last_ack_does_not_sit_out_a_poll_timeout() -> None:
    """With nothing left in librdkafka, the delivery thread waits on its own event, which
    ``close()`` sets: it must not be blocked in a ``poll()`` of a minute."""
    fake = FakeProducer()
    producer = make(fake, config=KafkaProducerConfig(poll_timeout_s=60))
    await producer.start()
    future = await producer.send(b"x", "k")
    flushing = asyncio.create_task(producer.flush())
    fake.acknowledge()
    await asyncio.wait_for(flushing, 10)
    assert (await future).offset == 0
    await asyncio.wait_for(producer.close(), 10)  # the old thread slept out poll(60) here
    assert producer.in_flight == 0


async def test_a_send_after_an_idle_spell_is_reported_without_a_poll_timeout() -> None:
    """The idle thread is woken by the next send, so its report needs no timeout to pass."""
    fake = FakeProducer()
    async with make(fake, config=KafkaProducerConfig(poll_timeout_s=60)) as producer:
        first = await producer.send(b"a", "k")
        fake.acknowledge()
        await asyncio.wait_for(first, 10)
        second = await producer.send(b"b", "k")
        await asyncio.sleep(0)  # the loop yields once, as any caller does: the thread takes over
        fake.acknowledge()
        assert (await asyncio.wait_for(second, 10)).offset == 1
        await asyncio.wait_for(producer.flush(), 10)


def test_config_is_validated() -> None:
    with pytest.raises(ConfigurationError):
        KafkaProducerConfig(acks="1")
    with pytest.raises(ConfigurationError):
        KafkaProducerConfig(compression="brotli")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        KafkaProducerConfig(librdkafka={"debug": "all"})
    conf = KafkaProducerConfig().to_confluent()
    assert conf["enable.idempotence"] is True
    assert conf["acks"] == "all"
    assert "debug" not in conf


def test_constructor_needs_a_topic_and_a_client() -> None:
    with pytest.raises(ValidationError):
        KafkaProducer("", producer=FakeProducer())
    with pytest.raises(ValidationError):
        KafkaProducer(TOPIC)
