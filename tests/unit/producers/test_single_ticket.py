"""send()'s future builds its Ack when read: every way asyncio code reads a future gets the Ack."""

from __future__ import annotations

import asyncio

import pytest

from producers import KinesisProducer
from producers.tickets import SingleTicket
from shardline.errors import DeliveryError
from shardline.records import Ack
from tests.unit.producers.fake_kinesis import FakeKinesis

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}
BOUND = 5.0


def ticket() -> SingleTicket:
    made = SingleTicket(loop=asyncio.get_running_loop())
    made.partition_key, made.explicit_hash_key, made.data, made.event_id = "k", None, b"x", None
    return made


async def test_an_acknowledged_ticket_reads_as_an_ack_every_way() -> None:
    fut = ticket()
    seen: list[Ack] = []
    fut.add_done_callback(lambda done: seen.append(done.result()))
    waiter = asyncio.ensure_future(asyncio.wait_for(fut, BOUND))
    gathered = asyncio.ensure_future(asyncio.gather(fut))
    shielded = asyncio.ensure_future(asyncio.shield(fut))
    await asyncio.sleep(0)  # they all wait on the pending ticket
    fut.acknowledge("shardId-000000000001", "49590", 7)
    expected = Ack("shardId-000000000001", "49590", 7)
    assert await fut == expected
    assert fut.result() == expected
    assert await asyncio.wait_for(waiter, BOUND) == expected
    assert await asyncio.wait_for(gathered, BOUND) == [expected]
    assert await asyncio.wait_for(shielded, BOUND) == expected
    assert seen == [expected]
    assert fut.exception() is None


async def test_a_failed_or_cancelled_ticket_raises_when_read() -> None:
    failed = ticket()
    failed.fail(0, DeliveryError("gone"))
    with pytest.raises(DeliveryError):
        await failed
    with pytest.raises(DeliveryError):
        failed.result()
    cancelled = ticket()
    cancelled.cancel()
    cancelled.acknowledge("s", "1", None)  # too late: no effect, no error
    with pytest.raises(asyncio.CancelledError):
        cancelled.result()
    pending = ticket()
    with pytest.raises(asyncio.InvalidStateError):
        pending.result()


async def test_send_futures_resolve_to_acks_through_the_producer() -> None:
    fake = FakeKinesis()
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        futures = [await producer.send(b"r%d" % i, partition_key=f"k{i % 5}") for i in range(20)]
        acks = await asyncio.wait_for(asyncio.gather(*futures), BOUND)
        plain = await producer.send(b"alone", partition_key="solo")
        await producer.flush()
    assert all(isinstance(ack, Ack) for ack in acks)
    assert all(ack.sub_sequence_number is not None for ack in acks)  # aggregated
    assert [await f for f in futures] == acks  # built again on each read, equal every time
    assert (await plain).sub_sequence_number is None  # a lone record travels unaggregated
