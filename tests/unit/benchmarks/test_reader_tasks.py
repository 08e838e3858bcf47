"""A run's reader that died is named in its result, with why, and never with a record's bytes."""

from __future__ import annotations

import asyncio
import threading

from benchmarks.readertasks import ReadersPositioned, stop_readers
from shardline import metrics_events as events
from shardline.errors import ShardlineError


async def test_dead_readers_are_named_and_cancelled_ones_are_not() -> None:
    forever = asyncio.Event()

    async def reads_until_cancelled() -> None:
        await forever.wait()

    async def finishes() -> None:
        return None

    async def dies(error: Exception) -> None:
        raise error

    readers = {
        asyncio.create_task(reads_until_cancelled()): "the polling reader of shard-0",
        asyncio.create_task(finishes()): "the polling reader of shard-1",
        asyncio.create_task(dies(ShardlineError("iterator expired"))): "the polling reader of shard-2",
        asyncio.create_task(dies(ValueError("bad byte b'secret-payload'"))): "the efo reader of shard-3",
    }
    await asyncio.sleep(0)  # every task starts; two of them end on their errors
    notes = await asyncio.wait_for(stop_readers(readers), 5)
    assert all(task.done() for task in readers)
    assert notes == [
        "the polling reader of shard-2 stopped early on ShardlineError (iterator expired):"
        " what it had not read is missing from the counts",
        "the efo reader of shard-3 stopped early on ValueError:"
        " what it had not read is missing from the counts",
    ]
    assert not any("secret-payload" in note for note in notes)


async def test_no_readers_no_notes() -> None:
    assert await stop_readers({}) == []


async def test_the_wait_ends_when_every_reader_holds_a_position() -> None:
    positioned = ReadersPositioned([("shard-0", "polling"), ("shard-0", "efo"), ("shard-1", "polling")])
    observers = {
        ("shard-0", "polling"): positioned.observer("shard-0", "polling"),
        ("shard-0", "efo"): positioned.observer("shard-0", "efo"),
        ("shard-1", "polling"): positioned.observer("shard-1", "polling"),
    }
    forever = asyncio.Event()
    reader = asyncio.create_task(forever.wait())
    waiting = asyncio.create_task(positioned.wait([reader], timeout=30))
    observers["shard-0", "polling"].on_event(events.GET_RECORDS_CALLS, 1.0, shard="shard-0")
    observers["shard-0", "efo"].on_event(events.GET_RECORDS_CALLS)  # not what a fan-out reader reports
    observers["shard-1", "polling"].on_event(events.RECORDS_READ, 5.0)
    await asyncio.sleep(0)
    assert not waiting.done() and positioned.waiting == 2
    observers["shard-0", "efo"].on_event(events.SUBSCRIPTIONS)
    observers["shard-1", "polling"].on_event(events.GET_RECORDS_CALLS)
    observers["shard-1", "polling"].on_event(events.GET_RECORDS_CALLS)  # a later call changes nothing
    await asyncio.wait_for(waiting, 5)
    assert positioned.waiting == 0
    assert not reader.done()
    reader.cancel()


async def test_a_reader_that_dies_before_its_position_ends_the_wait() -> None:
    positioned = ReadersPositioned([("shard-0", "polling"), ("shard-1", "polling")])

    async def dies() -> None:
        raise ShardlineError("no such stream")

    dead = asyncio.create_task(dies())
    await asyncio.wait_for(positioned.wait([dead], timeout=30), 5)
    assert positioned.waiting == 2  # the run starts and stop_readers names the dead reader
    assert (await stop_readers({dead: "the polling reader of shard-0"}))[0].startswith(
        "the polling reader of shard-0 stopped early on ShardlineError"
    )


async def test_the_wait_is_bounded() -> None:
    positioned = ReadersPositioned([("shard-0", "polling")])
    forever = asyncio.Event()
    reader = asyncio.create_task(forever.wait())
    waited = await asyncio.wait_for(positioned.wait([reader], timeout=0.01), 5)
    assert waited >= 0.01 and positioned.waiting == 1
    reader.cancel()


async def test_a_run_without_readers_does_not_wait() -> None:
    assert await asyncio.wait_for(ReadersPositioned([]).wait([], timeout=30), 5) == 0.0


async def test_a_kafka_member_assigned_on_its_polling_thread_ends_the_wait() -> None:
    """librdkafka reports a rebalance on the thread that polls the consumer, not the loop's."""
    positioned = ReadersPositioned([("group", "kafka")])
    forever = asyncio.Event()
    member = asyncio.create_task(forever.wait())
    observer = positioned.observer("group", "kafka")
    thread = threading.Thread(target=observer.on_event, args=(events.KAFKA_PARTITIONS_ASSIGNED, 8.0))
    thread.start()
    await asyncio.wait_for(positioned.wait([member], timeout=30), 5)
    thread.join(5)
    assert positioned.waiting == 0
    member.cancel()
