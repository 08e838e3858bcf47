"""A metrics observer raising ``CancelledError`` of its own does not kill the producer."""

from __future__ import annotations

import asyncio
from typing import Any

from producers import KinesisProducer
from shardline.records import Ack
from tests.unit.producers.fake_kinesis import FakeKinesis

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}
BOUND = 5.0  # seconds: only there so that a hang fails instead of sticking


class CancelledInsideObserver:
    def __init__(self) -> None:
        self.calls = 0

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.calls += 1
        raise asyncio.CancelledError


async def test_records_are_delivered_although_the_observer_raises_cancelled_error() -> None:
    fake = FakeKinesis()
    observer = CancelledInsideObserver()
    async with KinesisProducer("s", client=fake, observer=observer, **FAST) as producer:
        futures = [await producer.send(b"x", partition_key=f"k{i}") for i in range(5)]
        await asyncio.wait_for(producer.flush(), BOUND)  # before: BackgroundTaskError
    assert all(isinstance(future.result(), Ack) for future in futures)
    assert observer.calls > 0 and fake.written
