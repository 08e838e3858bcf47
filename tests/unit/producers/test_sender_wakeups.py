"""The sender is woken once per look at the buffer, and never misses a record added after it looked."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from producers import KinesisProducer
from tests.unit.producers.fake_kinesis import FakeKinesis

BOUND = 5.0


async def test_a_burst_of_sends_wakes_the_sender_once_and_records_after_its_look_still_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeKinesis()
    async with KinesisProducer("s", client=fake, linger=0.01, rate_limit_percent=None) as producer:
        wakeup = producer._wakeup
        assert wakeup is not None
        sets: list[asyncio.Event] = []
        original = asyncio.Event.set

        def counting(event: asyncio.Event) -> None:
            sets.append(event)
            original(event)

        monkeypatch.setattr(asyncio.Event, "set", counting)
        # a burst that never yields: the sender cannot look in between
        first = [await producer.send(b"a%d" % i, partition_key=f"k{i % 7}") for i in range(200)]
        assert [event for event in sets if event is wakeup] == [wakeup]
        assert len(await asyncio.wait_for(asyncio.gather(*first), BOUND)) == 200
        # the sender has looked (and cleared its event) since: the next burst wakes it again,
        # and goes out by the linger alone, with no flush to push it
        second = [await producer.send(b"b%d" % i, partition_key=f"k{i % 7}") for i in range(50)]
        assert len(await asyncio.wait_for(asyncio.gather(*second), BOUND)) == 50
    written: list[Any] = [entry for _, entry in fake.written]
    assert written  # every record reached the fake stream
