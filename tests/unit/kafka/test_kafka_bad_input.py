"""Bad input to the Kafka producer is a typed error before anything is queued.

Each case here used to get past validation: a topic name Kafka refuses (accepted, then every
message failed after ``delivery_timeout_ms``, or ``produce()`` raised a bare ``TypeError`` or
``UnicodeEncodeError``), headers larger than the message limit (librdkafka refused the
message mid-batch, after the messages before it were queued), a datetime that has no epoch
timestamp (a bare ``ValueError``), and anything else ``produce()`` raises that is neither a
``KafkaException`` nor a ``BufferError`` (raw from ``send()``; ``send_many`` already typed it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pytest

from producers.kafka import KafkaProducer, KafkaProducerConfig
from shardline.errors import MessageTooLargeError, ValidationError
from shardline.records import Record
from tests.unit.kafka.fake_kafka_producer import FakeProducer

LIMIT = 1_000
BOUND = 5.0


def make(fake: FakeProducer, topic: str = "telemetry") -> KafkaProducer:
    config = KafkaProducerConfig(poll_timeout_s=0.05, max_message_bytes=LIMIT)
    return KafkaProducer(topic, producer=fake, config=config)


@asynccontextmanager
async def started(fake: FakeProducer) -> AsyncIterator[KafkaProducer]:
    """A started producer, closed with a bound: a message wrongly queued fails at the purge
    instead of holding the close for a report the double never sends."""
    producer = make(fake)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.close(timeout=BOUND)


@pytest.mark.parametrize(
    "topic",
    ["bad topic", "a/b", "t:1", ".", "..", "a" * 250, "töpic", "t\ud800", "", 5, None, b"telemetry"],
    ids=[
        "space",
        "slash",
        "colon",
        "dot",
        "dotdot",
        "250-chars",
        "non-ascii",
        "surrogate",
        "empty",
        "int",
        "none",
        "bytes",
    ],
)
def test_a_topic_name_kafka_refuses_is_refused_at_construction(topic: Any) -> None:
    with pytest.raises(ValidationError, match="topic name"):
        make(FakeProducer(), topic)


@pytest.mark.parametrize("topic", ["a" * 249, "telemetry.v2_raw-1", "A", "..a", "___"])
def test_every_name_kafka_accepts_is_accepted(topic: str) -> None:
    assert make(FakeProducer(), topic).topic == topic


def test_the_error_does_not_quote_the_name() -> None:
    with pytest.raises(ValidationError) as refused:
        make(FakeProducer(), "secret-token!")
    assert "secret" not in str(refused.value)
    assert "character 12" in str(refused.value)


async def test_headers_count_toward_the_message_limit_in_send() -> None:
    fake = FakeProducer()
    async with started(fake) as producer:
        with pytest.raises(MessageTooLargeError, match="headers"):
            await producer.send(b"v" * 100, "k", headers={"h": b"x" * LIMIT})
        with pytest.raises(MessageTooLargeError):
            await producer.send(Record(b"v" * 100, "k", headers={"h" * LIMIT: b""}))
        assert producer.in_flight == 0
    assert fake.produced == []


async def test_headers_over_the_limit_refuse_the_whole_batch_before_any_is_queued() -> None:
    fake = FakeProducer()
    async with started(fake) as producer:
        batch = [Record(b"a", "k"), Record(b"b", "k", headers={"h": b"x" * LIMIT}), Record(b"c", "k")]
        with pytest.raises(MessageTooLargeError, match="message 1 of the batch"):
            await producer.send_many(batch)
        assert producer.in_flight == 0
    assert fake.produced == []


async def test_headers_within_the_limit_pass() -> None:
    fake = FakeProducer()
    async with started(fake) as producer:
        future = await producer.send(b"v" * 100, "k", headers=[("h", b"x" * 800), ("n", None)])
        fake.acknowledge()
        await asyncio.wait_for(future, BOUND)
    assert fake.produced[0].kwargs["headers"] == [("h", b"x" * 800), ("n", None)]


def test_a_datetime_with_no_epoch_timestamp_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="timestamp"):
        KafkaProducer._extra_kwargs(None, None, datetime.min)  # naive year 1: no timestamp()


@pytest.mark.parametrize("raised", [TypeError("bad argument"), ValueError("bad"), OverflowError("big")])
async def test_what_else_produce_raises_in_send_is_a_validation_error(raised: Exception) -> None:
    fake = FakeProducer()
    async with started(fake) as producer:
        fake.raise_on_produce = raised
        with pytest.raises(ValidationError, match=type(raised).__name__) as refused:
            await producer.send(b"x", "k")
        assert refused.value.__cause__ is raised
        assert producer.in_flight == 0
        fake.raise_on_produce = None
