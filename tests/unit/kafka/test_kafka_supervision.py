"""The Kafka producer's delivery thread has an owner; its callbacks can fail without a hang.

Callbacks librdkafka runs (``error_cb`` from ``poll()``, ``oauth_cb`` on its own background
thread) and the user's observer, serializer and key strategy are made to raise; every wait
is bounded so a hang fails, and every pending future must be resolved.  The tests against
real librdkafka need no broker: they point it at a closed port.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

from producers._kafka_config import KafkaProducerConfig
from producers.kafka import KafkaProducer
from shardline.errors import (
    AuthenticationError,
    BackgroundTaskError,
    DeliveryError,
    InvalidPartitionKeyError,
    SerializationError,
)
from shardline.kafka_config import KafkaClientConfig, MskIam, MskIamTokenProvider
from shardline.metrics import GuardedObserver
from shardline.records import KafkaAck
from tests.unit.kafka.fake_kafka_producer import FakeProducer

TOPIC = "telemetry"
BOUND = 10.0
_T = TypeVar("_T")


async def bounded(awaitable: Awaitable[_T]) -> _T:
    return await asyncio.wait_for(awaitable, BOUND)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make(fake: FakeProducer, **options: Any) -> KafkaProducer:
    return KafkaProducer(TOPIC, producer=fake, config=KafkaProducerConfig(poll_timeout_s=0.02), **options)


class RaisingObserver:
    """Raises on every event; ``seen`` is set once ``event`` was reported."""

    def __init__(self, event: str = "") -> None:
        self.event = event
        self.seen = threading.Event()

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        if name == self.event:
            self.seen.set()
        raise RuntimeError("observer bug")


class PollRaising(FakeProducer):
    """``poll()`` raises what a client callback raised, the first ``times`` times it is called."""

    def __init__(self, error: BaseException, times: int) -> None:
        super().__init__()
        self.error = error
        self.times = times
        self.raised = threading.Event()

    def poll(self, timeout: float = 0) -> int:
        if self.times > 0 and threading.current_thread() is not threading.main_thread():
            self.times -= 1
            self.raised.set()
            raise self.error
        return super().poll(timeout)


async def test_a_callback_raising_inside_poll_does_not_stop_the_delivery_thread() -> None:
    fake = PollRaising(RuntimeError("error_cb bug"), times=3)
    async with make(fake) as producer:
        future = await producer.send(b"x", "k")
        await bounded(asyncio.to_thread(fake.raised.wait, BOUND))
        fake.acknowledge()
        ack = await bounded(future)
        await bounded(producer.flush())
        assert producer._pump is not None and producer._pump.alive
        assert producer._callback_errors >= 1
    assert isinstance(ack, KafkaAck)


async def test_the_delivery_thread_dying_fails_pending_messages_and_flush_raises() -> None:
    fake = PollRaising(SystemExit(3), times=1)  # e.g. sys.exit() in a callback
    producer = make(fake)
    single = await producer.send(b"x", "k")
    batch = await producer.send_many([b"a", b"b"], ["k", "k"])
    with pytest.raises(BackgroundTaskError) as caught:
        await bounded(producer.flush())
    assert isinstance(caught.value.__cause__, SystemExit)
    with pytest.raises(DeliveryError) as failed:
        await bounded(single)
    assert failed.value.__cause__ is caught.value
    assert len((await bounded(batch)).failed) == 2
    with pytest.raises(BackgroundTaskError):
        await producer.send(b"late", "k")
    with pytest.raises(BackgroundTaskError):
        await bounded(producer.close())


async def test_a_raising_observer_is_contained_on_every_path() -> None:
    observer = RaisingObserver()
    fake = FakeProducer()
    async with make(fake, observer=observer) as producer:
        single = await producer.send(b"x", "k")
        batch = await producer.send_many([b"a", b"b"], ["k", "k"])
        fake.acknowledge()
        await bounded(producer.flush())
        guarded = producer._observer
    assert isinstance(await bounded(single), KafkaAck)
    assert (await bounded(batch)).ok
    assert isinstance(guarded, GuardedObserver) and guarded.failures >= 2


async def test_a_raising_serializer_or_key_strategy_is_that_messages_typed_error() -> None:
    def serializer(value: Any) -> bytes:
        raise ValueError("cannot encode")

    def strategy(value: Any) -> str:
        raise KeyError("device")

    fake = FakeProducer()
    async with make(fake, serializer=serializer, key_strategy=strategy) as producer:
        with pytest.raises(SerializationError):
            await producer.send({"a": 1}, "k")
        with pytest.raises(InvalidPartitionKeyError):
            await producer.send(b"no key")
        with pytest.raises(InvalidPartitionKeyError):
            await producer.send_many([b"no key"])
        ok = await producer.send(b"keyed", "k")
        fake.acknowledge()
        await bounded(producer.flush())
    assert isinstance(await bounded(ok), KafkaAck)
    assert len(fake.produced) == 1


async def test_error_cb_with_a_raising_observer_keeps_an_idle_producer_flushable() -> None:
    """Real librdkafka, no broker: error_cb fires on the delivery thread and its observer raises."""
    observer = RaisingObserver(event="kafka_client_error")
    client = KafkaClientConfig(f"127.0.0.1:{closed_port()}")
    config = KafkaProducerConfig(delivery_timeout_ms=1000, librdkafka={"log_level": 0})
    producer = KafkaProducer(TOPIC, client, config=config, observer=observer)
    async with producer:
        future = await producer.send(b"x", "k")
        await bounded(asyncio.to_thread(observer.seen.wait, BOUND))
        with pytest.raises(DeliveryError):
            await bounded(future)
        await bounded(producer.flush())
        assert producer._pump is not None and producer._pump.alive


async def test_oauth_cb_failing_is_recorded_and_reported_as_the_cause() -> None:
    """MSK IAM signing through MskIamTokenProvider: the first token lives one second, then
    STS is 'down'.  librdkafka asks for a new token on its own thread; the failure becomes
    the cause reported with messages that time out, and nothing hangs."""
    signed = threading.Event()
    failed = threading.Event()
    calls = 0

    def signer(region: str) -> tuple[str, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            signed.set()
            return "token", int((time.time() + 1.0) * 1000)
        failed.set()
        raise RuntimeError("sts unreachable")

    provider = MskIamTokenProvider("us-east-1", signer=signer, refresh_margin_s=0)
    client = KafkaClientConfig(f"127.0.0.1:{closed_port()}", security=MskIam(provider))
    config = KafkaProducerConfig(delivery_timeout_ms=500, librdkafka={"log_level": 0})
    producer = KafkaProducer(TOPIC, client, config=config)
    async with producer:
        await producer.start()
        await bounded(asyncio.to_thread(failed.wait, BOUND))
        future = await producer.send(b"x", "k")
        with pytest.raises(DeliveryError) as caught:
            await bounded(future)
        assert isinstance(caught.value.__cause__, AuthenticationError)
        assert "sts unreachable" not in str(caught.value.__cause__)  # no signer text leaks
        await bounded(producer.flush())
        assert producer._callback_errors >= 1
    assert signed.is_set()
