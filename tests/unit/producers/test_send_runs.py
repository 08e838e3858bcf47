"""send() records wait in a run (producers.tickets.SendRun) until the accumulator takes them.

A run is one more place a record can be: these tests check that nothing about a record's
order, routing or outcome depends on whether it was still in the run when something happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

from producers import KinesisProducer
from producers.tickets import SendRun, SingleTicket
from shardline.aggregation import deaggregate
from shardline.errors import BackgroundTaskError, DeliveryError
from shardline.records import Ack
from shardline.shardmath import partition_key_hash
from tests.unit.producers.fake_kinesis import FakeKinesis

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}
BOUND = 5.0
_T = TypeVar("_T")


async def bounded(awaitable: Awaitable[_T]) -> _T:
    return await asyncio.wait_for(awaitable, BOUND)


def written_by_key(fake: FakeKinesis) -> dict[str, list[tuple[str, bytes]]]:
    """(shard, data) of every user record written, per partition key, in the order written."""
    out: dict[str, list[tuple[str, bytes]]] = {}
    for shard_id, entry in fake.written:
        users = deaggregate(entry["Data"])
        if users is None:
            out.setdefault(entry["PartitionKey"], []).append((shard_id, entry["Data"]))
            continue
        for user in users:
            out.setdefault(user.partition_key, []).append((shard_id, user.data))
    return out


async def test_send_and_send_many_in_turn_keep_each_keys_order() -> None:
    fake = FakeKinesis(shards=1)
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        futures = [await producer.send(b"a%d" % i, partition_key="dev") for i in range(3)]
        batch = await producer.send_many([b"b0", b"b1"], ["dev", "dev"])
        futures += [await producer.send(b"c%d" % i, partition_key="dev") for i in range(2)]
        await bounded(producer.flush())
    assert (await batch).ok
    acks = [await future for future in futures]
    assert all(type(ack) is Ack for ack in acks)
    assert [data for _, data in written_by_key(fake)["dev"]] == [
        b"a0",
        b"a1",
        b"a2",
        b"b0",
        b"b1",
        b"c0",
        b"c1",
    ]


async def test_records_still_in_the_open_run_fail_with_the_producer() -> None:
    producer = KinesisProducer("s", client=FakeKinesis(), **FAST)
    await producer.start()
    for _ in range(3):
        await asyncio.sleep(0)  # the sender waits to be woken
    futures = [await producer.send(b"x", partition_key=f"k{i}") for i in range(5)]
    assert producer._send_run is not None and len(producer._send_run) == 5  # not taken yet
    assert producer._sender is not None
    producer._sender.cancel()  # dies before it takes the run
    for future in futures:
        with pytest.raises(BackgroundTaskError, match="cancelled"):
            await bounded(future)
    assert producer.buffered == (0, 0)
    with pytest.raises(BackgroundTaskError):
        await bounded(producer.close())


async def test_a_run_routed_before_a_reshard_is_routed_again_by_the_new_map() -> None:
    fake = FakeKinesis(shards=1)
    async with KinesisProducer("s", client=fake, **{**FAST, "linger": 60}) as producer:
        first = await producer.send(b"first", partition_key="k-first")
        while producer._send_run is not None:
            await asyncio.sleep(0)  # the sender takes it: its linger timer now runs
        payloads = {f"k{i}": b"v%d" % i for i in range(64)}
        futures = [await producer.send(data, partition_key=key) for key, data in payloads.items()]
        await asyncio.sleep(0)
        assert producer._send_run is not None  # routed to the parent, not yet in the accumulator
        half = fake.split_the_only_shard()
        assert await bounded(producer.refresh_shard_map())
        await bounded(producer.flush())
    acks = [await future for future in futures]
    assert (await first).shard_id in ("left", "right")
    written = written_by_key(fake)
    for (key, data), ack in zip(payloads.items(), acks, strict=True):
        shard = "left" if partition_key_hash(key) < half else "right"
        assert written[key] == [(shard, data)], key
        assert ack.shard_id == shard


async def test_a_run_that_fills_the_buffer_is_taken_while_send_waits_for_room() -> None:
    fake = FakeKinesis()
    async with KinesisProducer("s", client=fake, buffer_max_records=3, **FAST) as producer:
        futures = [await bounded(producer.send(b"r%d" % i, partition_key=f"k{i}")) for i in range(20)]
        acks = await bounded(asyncio.gather(*futures))
    assert len(acks) == 20 and all(type(ack) is Ack for ack in acks)
    assert sum(len(users) for users in written_by_key(fake).values()) == 20


def _run(count: int) -> tuple[SendRun, list[SingleTicket]]:
    loop = asyncio.get_running_loop()
    run = SendRun(0.0)
    tickets = [SingleTicket(loop=loop) for _ in range(count)]
    for index, ticket in enumerate(tickets):
        run.keys.append(f"k{index}")
        run.datas.append(b"d%d" % index)
        run.tickets.append(ticket)
    return run, tickets


async def test_a_run_acknowledges_its_slots_with_consecutive_sub_sequence_numbers() -> None:
    run, tickets = _run(4)
    tickets[2].cancel()  # the caller gave up on one: acknowledging it is not an error
    run.ack_run([1, 2, 3], 5, "shardId-1", "4959", 0.0)
    run.ack_run([0], None, "shardId-0", "4960", 0.0)
    assert tickets[0].result() == Ack("shardId-0", "4960", None)
    assert tickets[1].result() == Ack("shardId-1", "4959", 5)
    assert tickets[3].result() == Ack("shardId-1", "4959", 7)
    assert tickets[2].cancelled()


async def test_a_run_aborts_only_the_records_without_an_outcome() -> None:
    run, tickets = _run(3)
    run.extras[1] = (None, "event-1")
    assert run.fields(1) == ("k1", None, b"d1", "event-1") and run.fields(0) == ("k0", None, b"d0", None)
    run.release([0, 1])
    assert run.datas == [None, None, b"d2"]
    run.ack_run([0], 0, "s", "1", 0.0)
    run.fail(1, DeliveryError("not delivered"))
    run.abort(DeliveryError("closed"))
    assert tickets[0].result() == Ack("s", "1", 0)
    errors: list[Any] = [tickets[1].exception(), tickets[2].exception()]
    assert [str(error) for error in errors] == ["not delivered", "closed"]


async def test_a_full_buffer_is_sent_at_once_instead_of_lingering() -> None:
    # A caller waiting for room gains nothing from the linger: with nothing in flight, only
    # sending frees room. With a 60 s linger the sends below used to wait a minute each round.
    fake = FakeKinesis()
    async with KinesisProducer(
        "s", client=fake, buffer_max_records=3, linger=60, rate_limit_percent=None
    ) as producer:
        futures = [await bounded(producer.send(b"r%d" % i, partition_key=f"k{i}")) for i in range(10)]
        assert len(fake.calls) == 3  # three full buffers went without lingering
        await bounded(producer.flush())  # the last record's linger is not cut short
        acks = await bounded(asyncio.gather(*futures))
    assert len(acks) == 10 and all(type(ack) is Ack for ack in acks)


async def test_a_refused_non_blocking_send_also_sends_the_full_buffer_at_once() -> None:
    from shardline.errors import BufferFullError

    fake = FakeKinesis()
    async with KinesisProducer(
        "s", client=fake, buffer_max_records=3, linger=60, block_when_full=False, rate_limit_percent=None
    ) as producer:
        futures = [await producer.send(b"r%d" % i, partition_key=f"k{i}") for i in range(3)]
        with pytest.raises(BufferFullError):
            await producer.send(b"one too many", partition_key="k3")
        acks = await bounded(asyncio.gather(*futures))  # not after the 60 s linger
    assert len(acks) == 3


@pytest.mark.parametrize("aggregate", [True, False])
async def test_event_ids_and_explicit_hash_keys_of_send_records_arrive(aggregate: bool) -> None:
    from shardline.records import Record

    fake = FakeKinesis(shards=1)
    async with KinesisProducer("s", client=fake, aggregate=aggregate, **FAST) as producer:
        futures = [
            await producer.send(b"plain", partition_key="a"),
            await producer.send(b"tagged", partition_key="b", event_id="evt-1"),
            await producer.send(Record(b"hashed", "c", explicit_hash_key=7, event_id="evt-2")),
            await producer.send(b"hashed-only", partition_key="d", explicit_hash_key=2**127),
        ]
        await bounded(producer.flush())
    acks = [await future for future in futures]
    assert all(type(ack) is Ack for ack in acks)
    users: dict[bytes, Any] = {}
    for _, entry in fake.written:
        inner = deaggregate(entry["Data"])
        if inner is None:  # a plain entry: no tag can travel on it
            users[entry["Data"]] = (entry["PartitionKey"], None, entry.get("ExplicitHashKey"))
            continue
        for user in inner:
            ehk = None if user.explicit_hash_key is None else str(user.explicit_hash_key)
            users[user.data] = (user.partition_key, user.event_id, ehk)
    assert users[b"tagged"] == ("b", "evt-1", None)
    assert users[b"hashed"] == ("c", "evt-2", "7")
    assert users[b"plain"][:2] == ("a", None)
    assert users[b"hashed-only"] == ("d", None, str(2**127))
