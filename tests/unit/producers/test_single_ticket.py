"""send()'s future builds its Ack when read: every way asyncio code reads a future gets the Ack."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from producers import KinesisProducer
from producers.tickets import SendRun, SingleTicket
from shardline.errors import DeliveryError
from shardline.records import Ack
from tests.unit.producers.fake_kinesis import FakeKinesis

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}
BOUND = 5.0


def ticket() -> SingleTicket:
    return SingleTicket(loop=asyncio.get_running_loop())


def in_a_run(*tickets: SingleTicket) -> SendRun:
    """The run a producer's send() calls would have put these tickets' records in."""
    run = SendRun(0.0)
    for index, made in enumerate(tickets):
        run.keys.append(f"k{index}")
        run.datas.append(b"x")
        run.tickets.append(made)
        run.groups.setdefault("shardId-000000000000", []).append(index)
    return run


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
    ack = fut.result()
    assert type(ack) is Ack and hash(ack) == hash(expected) and repr(ack) == repr(expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ack.shard_id = "elsewhere"  # type: ignore[misc]


async def test_a_failed_or_cancelled_ticket_raises_when_read() -> None:
    failed = ticket()
    in_a_run(failed).fail(0, DeliveryError("gone"))
    with pytest.raises(DeliveryError):
        await failed
    with pytest.raises(DeliveryError):
        failed.result()
    cancelled = ticket()
    cancelled.cancel()
    cancelled.acknowledge("s", "1", None)  # too late: no effect, no error
    with pytest.raises(asyncio.CancelledError):
        cancelled.result()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
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


async def _first_request(fake: FakeKinesis) -> None:
    while not fake.calls:
        await asyncio.sleep(0)  # yield to the sender until its first request is made


async def test_encoded_aggregates_hold_the_data_once_and_reroute_after_a_split() -> None:
    """send() records let go of their bytes once aggregated; a reshard re-routes queued and
    in-flight aggregates from the entries' own bytes, each record to its new shard."""
    from shardline.aggregation import deaggregate
    from shardline.shardmath import partition_key_hash

    fake = FakeKinesis(shards=1)
    gate = asyncio.Event()
    fake.gate = gate  # the first request is held: later aggregates queue up behind it
    seen: dict[str, float] = {}

    class Observer:
        def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
            if name == "shard_map_changes":
                seen["split_entries"] = dimensions["split_entries"]
            elif name == "records_rerouted":
                seen["rerouted"] = seen.get("rerouted", 0) + value

    payloads = {f"k{i}": b"payload-%04d" % i + bytes([i % 256]) * 40 for i in range(400)}
    async with KinesisProducer(
        "s",
        client=fake,
        observer=Observer(),
        max_in_flight=1,
        max_batch_entries=2,  # two aggregates a request: the rest stay queued
        aggregate_max_bytes=2_048,
        linger=60,
        rate_limit_percent=None,
    ) as producer:
        try:
            futures = [await producer.send(data, partition_key=key) for key, data in payloads.items()]
            await asyncio.wait_for(_first_request(fake), BOUND)  # held at the gate
            assert producer._acc is not None
            runs = {
                id(owner): owner
                for queue in producer._acc._ready.values()
                for entry in queue
                for owner in entry.owners
            }
            datas = [data for run in runs.values() for data in run.datas]  # type: ignore[attr-defined]
            assert datas and all(data is None for data in datas)  # aggregated and encoded: held once
            half = fake.split_the_only_shard()
            assert await producer.refresh_shard_map()  # splits the queued encoded aggregates
        finally:
            gate.set()  # the held request lands on the children: the misplaced path
        await asyncio.wait_for(producer.flush(), BOUND)
        acks = await asyncio.wait_for(asyncio.gather(*futures), BOUND)
    assert len(acks) == len(payloads)
    assert seen["split_entries"] > 0  # queued encoded aggregates were split by the replan
    assert seen["rerouted"] > 0  # the held one landed on a child and its strays went again
    written: dict[str, list[tuple[str, bytes]]] = {}
    for shard_id, entry in fake.written:
        users = deaggregate(entry["Data"]) or []
        for user in users:
            written.setdefault(user.partition_key, []).append((shard_id, user.data))
    for key, data in payloads.items():
        expected = "left" if partition_key_hash(key) < half else "right"
        assert (expected, data) in written[key], key  # on its new shard, bytes intact
