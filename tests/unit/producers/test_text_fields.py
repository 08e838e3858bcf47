"""Text a record carries must have a UTF-8 form; one that does not is refused at send time.

A Python str can hold lone surrogates (JSON ``\\ud800`` escapes, ``surrogateescape``
decoding).  Past ``send()`` such text is encoded by background work (an aggregate's key table,
a request body, librdkafka), where it used to kill the Kinesis sender (failing every record
buffered with it and leaving its own future pending), leave half a Kafka batch queued behind
a bare ``UnicodeEncodeError``, or crash the process inside confluent-kafka (a header name).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from producers import KinesisProducer
from producers.kafka import KafkaProducer, KafkaProducerConfig
from shardline.errors import InvalidPartitionKeyError, SerializationError, ValidationError
from shardline.records import Ack, Record
from shardline.serde import serialize
from shardline.validation import is_text, require_text, validate_partition_key
from tests.unit.kafka.fake_kafka_producer import FakeProducer
from tests.unit.producers.fake_kinesis import FakeKinesis

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}
BOUND = 5.0
LONE = "dev-\ud800"


def test_text_checks() -> None:
    assert is_text("plain") and is_text("gerät-ü-日本") and not is_text(LONE)
    assert require_text("gerät", "key") == "gerät"
    with pytest.raises(InvalidPartitionKeyError, match="character 4 is a lone surrogate"):
        validate_partition_key(LONE)
    with pytest.raises(ValidationError, match="event id"):
        require_text("\udc80", "event id")


@pytest.mark.parametrize(
    "send",
    [
        {"partition_key": LONE},
        {"partition_key": LONE, "explicit_hash_key": 5},
        {"partition_key": "dev", "event_id": "id-\udc80"},
        {"data": Record(b"x", partition_key=LONE, explicit_hash_key=7)},
    ],
    ids=["key", "key-with-hash-key", "event-id", "record"],
)
async def test_kinesis_refuses_the_record_and_keeps_the_others(send: dict[str, Any]) -> None:
    fake = FakeKinesis(shards=2)
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        others = await producer.send_many([b"ok-%d" % i for i in range(50)], [f"k{i}" for i in range(50)])
        data = send.pop("data", b"payload")
        with pytest.raises(ValidationError):
            await producer.send(data, **send)
        acks = await asyncio.wait_for(others, BOUND)  # before: all failed with the dead sender
        assert acks.ok
        later = await producer.send(b"later", partition_key="k")
        assert isinstance(await asyncio.wait_for(later, BOUND), Ack)


async def test_kinesis_send_many_refuses_the_batch_before_buffering_any_of_it() -> None:
    fake = FakeKinesis(shards=2)
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        keys = [f"k{i}" for i in range(100)]
        keys[60] = LONE
        with pytest.raises(InvalidPartitionKeyError):
            await producer.send_many([b"v"] * 100, keys)
        assert producer.buffered == (0, 0)
    assert not fake.calls


def make_kafka(fake: FakeProducer, **options: Any) -> KafkaProducer:
    return KafkaProducer("t", producer=fake, config=KafkaProducerConfig(poll_timeout_s=0.05), **options)


async def test_kafka_send_many_refuses_the_batch_before_queueing_any_of_it() -> None:
    fake = FakeProducer(partitions=4)
    async with make_kafka(fake) as producer:
        keys: list[str | bytes] = [f"k{i}" for i in range(1000)]
        keys[500] = LONE
        with pytest.raises(InvalidPartitionKeyError, match="message 500 of the batch"):
            await producer.send_many([b"v"] * 1000, keys)
        mixed: list[str | bytes] = [b"bytes-key", "gerät", LONE]
        with pytest.raises(InvalidPartitionKeyError, match="message 2 of the batch"):
            await producer.send_many([b"v"] * 3, mixed)
        # before: 500 messages queued behind a bare UnicodeEncodeError, close() hung
        assert not fake.produced
        fine = await producer.send_many([b"v"] * 2, ["gerät", b"\xff"])
        fake.acknowledge()
        assert (await asyncio.wait_for(fine, BOUND)).ok
        assert producer.in_flight == 0


@pytest.mark.parametrize(
    "call",
    [
        {"key": LONE},
        {"key": "k", "headers": {"trace-\ud800": b"x"}},
        {"value": Record(b"v", partition_key="k", headers={"h\udc80": b"x"})},
        {"value": Record(b"v", partition_key="k", event_id="id-\udc80")},
    ],
    ids=["key", "header-name", "record-header-name", "record-event-id"],
)
async def test_kafka_send_refuses_text_librdkafka_cannot_encode(call: dict[str, Any]) -> None:
    fake = FakeProducer(partitions=4)
    async with make_kafka(fake) as producer:
        value = call.pop("value", b"v")
        with pytest.raises(ValidationError):
            await producer.send(value, **call)
        assert not fake.produced


async def test_serializer_errors_name_types_not_the_message_that_may_quote_the_value() -> None:
    def strict(value: Any) -> bytes:
        return str(int(value["amount"])).encode()

    card = "card-4111-1111-1111-1111"
    with pytest.raises(SerializationError) as caught:
        serialize(strict, {"amount": card})
    assert card not in str(caught.value)
    assert "dict" in str(caught.value) and "ValueError" in str(caught.value)
    fake = FakeProducer(partitions=1)
    async with make_kafka(fake, serializer=strict) as producer:
        for attempt in (producer.send({"amount": card}, "k"), producer.send_many([{"amount": card}], ["k"])):
            with pytest.raises(SerializationError) as caught:
                await attempt
            assert card not in str(caught.value)
