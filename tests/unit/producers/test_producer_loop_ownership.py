"""A producer belongs to the event loop that started it; a call from another loop (another
thread's, most often) raises ``RuntimeError`` at once, as asyncio's own primitives do.

Such calls used to be accepted: a ``send()`` buffered its record from the other thread,
racing the owner's bookkeeping, and handed back a future of the owner's loop that the caller
could not await; a ``flush()`` there never ended, and bound the producer's "drained" event to
the foreign loop, so the owner's own ``flush()`` and ``close()`` then raised a bare
``RuntimeError`` from asyncio.  Nothing of a refused call is buffered, and the owner goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from producers import KinesisProducer
from producers.kafka import KafkaProducer, KafkaProducerConfig
from shardline.errors import ClosedError
from shardline.records import Ack
from tests.unit.kafka.fake_kafka_producer import FakeProducer
from tests.unit.producers.fake_kinesis import FakeKinesis

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}
BOUND = 5.0

Call = Callable[[], Awaitable[Any]]


async def outcomes_on_another_loop(calls: dict[str, Call]) -> dict[str, BaseException | str]:
    """Each call's outcome on a new event loop in another thread (each bounded)."""

    async def run_all() -> dict[str, BaseException | str]:
        seen: dict[str, BaseException | str] = {}
        for name, call in calls.items():
            try:
                await asyncio.wait_for(call(), BOUND)
            except BaseException as exc:  # the outcome is what is asserted
                seen[name] = exc
            else:
                seen[name] = "accepted"
        return seen

    return await asyncio.wait_for(asyncio.to_thread(asyncio.run, run_all()), 4 * BOUND)


def assert_refused(outcomes: dict[str, BaseException | str]) -> None:
    for name, outcome in outcomes.items():
        assert isinstance(outcome, RuntimeError), (name, outcome)
        assert "event loop" in str(outcome), (name, outcome)


async def test_kinesis_calls_from_another_loop_are_refused_and_the_owner_goes_on() -> None:
    fake = FakeKinesis(shards=2)
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        outcomes = await outcomes_on_another_loop(
            {
                "send": lambda: producer.send(b"x", partition_key="k"),
                "send_many": lambda: producer.send_many([b"x", b"y"], ["k", "l"]),
                "flush": producer.flush,
                "close": producer.close,
            }
        )
        assert_refused(outcomes)
        assert producer.buffered == (0, 0)
        ack = await asyncio.wait_for(await producer.send(b"mine", partition_key="k"), BOUND)
        assert isinstance(ack, Ack)
        await asyncio.wait_for(producer.flush(), BOUND)
    assert [entry["PartitionKey"] for _, entry in fake.written] == ["k"]


async def test_kinesis_start_after_close_raises_closed_error() -> None:
    producer = KinesisProducer("s", client=FakeKinesis(), **FAST)
    await producer.start()
    await producer.close()
    with pytest.raises(ClosedError):
        await producer.start()


async def test_kafka_calls_from_another_loop_are_refused_and_the_owner_goes_on() -> None:
    fake = FakeProducer(partitions=2)
    config = KafkaProducerConfig(poll_timeout_s=0.05)
    async with KafkaProducer("t", producer=fake, config=config) as producer:
        outcomes = await outcomes_on_another_loop(
            {
                "send": lambda: producer.send(b"x", "k"),
                "send_many": lambda: producer.send_many([b"x", b"y"], ["k", "l"]),
                "flush": producer.flush,
                "close": producer.close,
            }
        )
        assert_refused(outcomes)
        assert fake.produced == []
        future = await producer.send(b"mine", "k")
        fake.acknowledge()
        ack = await asyncio.wait_for(future, BOUND)
        assert ack.topic == "t"
    assert [message.value_bytes for message in fake.produced] == [b"mine"]
