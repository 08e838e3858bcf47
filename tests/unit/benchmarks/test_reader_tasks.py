"""A run's reader that died is named in its result, with why, and never with a record's bytes."""

from __future__ import annotations

import asyncio

from benchmarks.readertasks import stop_readers
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
