"""What bounds a Kinesis producer's memory while its endpoint stalls.

Records stay counted against the buffer caps until acknowledged (not only until taken into a
request); the entry bytes of the requests in flight together stay within
``max_in_flight_bytes`` (one request may always go), and that much of ``buffer_max_bytes`` is
kept for the requests' serialised bodies.  The endpoint double holds every
PutRecords call until released: a stall.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from producers import KinesisProducer
from producers.config import ProducerConfig
from shardline.errors import BufferFullError, ConfigurationError
from tests.unit.producers.fake_kinesis import FakeKinesis

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}
WAIT = 10.0  # seconds: the bound on every wait below


class StalledKinesis(FakeKinesis):
    """Holds every PutRecords call until ``gate`` is set; tracks what is in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.in_flight_bytes = 0
        self.most_in_flight = 0
        self.most_in_flight_bytes = 0

    async def put_records(self, **kwargs: Any) -> dict[str, Any]:
        nbytes = sum(len(e["Data"]) + len(e["PartitionKey"]) for e in kwargs["Records"])
        self.in_flight += 1
        self.in_flight_bytes += nbytes
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.most_in_flight_bytes = max(self.most_in_flight_bytes, self.in_flight_bytes)
        try:
            return await super().put_records(**kwargs)
        finally:
            self.in_flight -= 1
            self.in_flight_bytes -= nbytes


@contextlib.asynccontextmanager
async def stalled_producer(fake: StalledKinesis, **options: Any) -> AsyncIterator[KinesisProducer]:
    """A started producer on ``fake``; on exit the stall ends and close is bounded, so a
    failed assertion cannot leave the test waiting on the stall."""
    producer = KinesisProducer("s", client=fake, **FAST, **options)
    await producer.start()
    try:
        yield producer
    finally:
        fake.gate.set()
        await producer.close(timeout=WAIT)


async def _until(condition: Any) -> None:
    """Let the loop run until ``condition()`` holds (bounded)."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), WAIT)


async def test_records_in_a_stalled_request_stay_counted_and_send_blocks_at_the_caps() -> None:
    fake = StalledKinesis()
    payload = b"x" * 1000
    async with stalled_producer(
        fake,
        aggregate=False,
        buffer_max_bytes=25 * 1002,
        max_in_flight_bytes=5 * 1002,  # kept for request bodies: records may hold 20 * 1002
        max_batch_entries=5,
    ) as producer:
        futures = []
        with pytest.raises(BufferFullError):
            while True:
                key = f"k{len(futures) % 10}"
                futures.append(await producer.send(payload, partition_key=key, block=False))
        assert len(futures) == 20
        await _until(lambda: fake.in_flight > 0)
        # Taken into a request that has not answered: still counted against the caps.
        assert producer.buffered == (20, 20 * 1002)
        blocked = asyncio.create_task(producer.send(payload, partition_key="late"))
        for _ in range(20):  # the sender and the requests get turns; the send stays blocked
            await asyncio.sleep(0)
        assert not blocked.done()
        assert producer.buffered[0] == 20
        fake.gate.set()  # the stall ends
        late = await asyncio.wait_for(blocked, WAIT)
        acks = await asyncio.wait_for(asyncio.gather(*futures, late), WAIT)
        await asyncio.wait_for(producer.flush(), WAIT)
        assert producer.buffered == (0, 0)
    assert len(acks) == 21 and all(ack.sequence_number for ack in acks)
    assert len(fake.written) == 21


async def test_bytes_in_flight_stay_within_max_in_flight_bytes() -> None:
    fake = StalledKinesis()
    payload = b"x" * 1000  # with a 2-character key: 1,002 entry bytes
    async with stalled_producer(
        fake, aggregate=False, max_batch_entries=1, max_in_flight=8, max_in_flight_bytes=3100
    ) as producer:
        futures = [await producer.send(payload, partition_key=f"k{i}") for i in range(10)]
        flushing = asyncio.create_task(producer.flush())
        await _until(lambda: fake.in_flight >= 3)
        for _ in range(20):
            await asyncio.sleep(0)
        assert fake.in_flight == 3  # max_in_flight would allow 8; the bytes allow 3
        fake.gate.set()
        await asyncio.wait_for(flushing, WAIT)
        acks = await asyncio.wait_for(asyncio.gather(*futures), WAIT)
    assert fake.most_in_flight == 3 and fake.most_in_flight_bytes == 3 * 1002
    assert len(acks) == 10 and len(fake.written) == 10


async def test_one_request_goes_even_when_larger_than_max_in_flight_bytes() -> None:
    fake = StalledKinesis()
    fake.gate.set()
    async with stalled_producer(fake, aggregate=False, max_in_flight_bytes=1) as producer:
        futures = [await producer.send(b"y" * 100, partition_key=f"k{i}") for i in range(50)]
        await asyncio.wait_for(producer.flush(), WAIT)
        acks = await asyncio.wait_for(asyncio.gather(*futures), WAIT)
    assert len(acks) == 50 and len(fake.written) == 50
    assert fake.most_in_flight == 1


def test_room_for_request_bodies_is_kept_out_of_the_record_buffer() -> None:
    assert ProducerConfig().record_buffer_bytes == 64 * 2**20 - 16 * 2**20
    assert ProducerConfig(buffer_max_bytes=1000, max_in_flight_bytes=300).record_buffer_bytes == 700
    assert ProducerConfig(buffer_max_bytes=1000, max_in_flight_bytes=5000).record_buffer_bytes == 500


def test_max_in_flight_bytes_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="max_in_flight_bytes"):
        ProducerConfig(max_in_flight_bytes=0)
