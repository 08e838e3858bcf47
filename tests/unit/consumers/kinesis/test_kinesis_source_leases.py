"""KinesisSource and its leases when other workers, bad rows or a failing store get involved.

Each test drives a real :class:`KinesisSource` against the in-memory Kinesis double and a
real checkpoint store (memory or SQLite), with the store wrapped where a race or a failure
has to be injected.  Waits are bounded (:func:`until`), so a source that never gets there
fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from consumers.checkpoint.base import Lease
from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.checkpoint.sqlite import SQLiteCheckpointStore
from consumers.kinesis import KinesisSource, ReaderConfig
from consumers.source import SourceBatch
from shardline.errors import CheckpointError, TransientServiceError
from shardline.records import SHARD_END
from tests.unit.consumers.kinesis.test_kinesis_polling_unit import FakeKinesis

BOUND = 5.0
FAST = ReaderConfig(lease_renew_interval=0.05, shard_discovery_interval=0.05)


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(BOUND):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


class TwoShards(FakeKinesis):
    """The double's records, listed as two shards (each reads the same records)."""

    async def list_shards(self, **_: Any) -> dict[str, Any]:
        half = 2**127
        return {
            "Shards": [
                {
                    "ShardId": shard_id,
                    "HashKeyRange": {"StartingHashKey": str(low), "EndingHashKey": str(high)},
                    "SequenceNumberRange": {"StartingSequenceNumber": "1000"},
                }
                for shard_id, low, high in (("shard-0", 0, half - 1), ("shard-1", half, 2**128 - 1))
            ]
        }


@contextlib.asynccontextmanager
async def reading(source: KinesisSource) -> AsyncIterator[asyncio.Queue[SourceBatch]]:
    """Iterate the source in a task of its own; its batches land in the queue yielded."""
    received: asyncio.Queue[SourceBatch] = asyncio.Queue()

    async def pump() -> None:
        async for batch in source.batches():
            await received.put(batch)

    task = asyncio.create_task(pump())
    try:
        yield received
    finally:
        await source.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


class MovesOnBeforeTheTake(MemoryCheckpointStore):
    """Between the source's listing and its take, the holder ``other`` checkpoints further."""

    def __init__(self, other: str, to: str) -> None:
        super().__init__()
        self.other = other
        self.to = to

    async def acquire(self, shard_id: str, owner: str) -> Lease:
        held = await self.get(shard_id)
        if owner != self.other and held is not None and held.owner == self.other:
            await self.checkpoint(held, self.to)
        return await super().acquire(shard_id, owner)


async def _held_by(store: MemoryCheckpointStore, owner: str, checkpoint: str) -> None:
    await store.create_if_absent("shard-0")
    lease = await store.acquire("shard-0", owner)
    await store.checkpoint(lease, checkpoint)


async def test_a_shard_resumes_where_the_lease_it_took_says_not_where_the_listing_did() -> None:
    store = MovesOnBeforeTheTake("B", "1050")
    await _held_by(store, "B", "1005")
    source = KinesisSource("s", store=store, owner="A", client=FakeKinesis([("k", b"x")] * 100), config=FAST)
    async with reading(source) as received:
        first = await asyncio.wait_for(received.get(), BOUND)
    # before: read from 1006 (the listing), then checkpointed back over B's 1050
    assert first.records[0].position.sequence_number == "1051"


async def test_a_shard_finished_by_its_holder_after_the_listing_is_not_read_again() -> None:
    store = MovesOnBeforeTheTake("B", SHARD_END)
    await _held_by(store, "B", "1005")
    client = FakeKinesis([("k", b"x")] * 100)
    source = KinesisSource("s", store=store, owner="A", client=client, config=FAST)
    async with reading(source):
        await until(lambda: "shard-0" in source._finished, "the finished shard is recognised")
    lease = await store.get("shard-0")
    assert lease is not None and lease.is_shard_end  # before: read again, then checkpointed back
    assert client.get_records_calls == 0


async def test_one_malformed_lease_row_leaves_the_other_shards_read(tmp_path: Path) -> None:
    path = tmp_path / "leases.db"
    store = SQLiteCheckpointStore(str(path))
    for shard_id in ("shard-0", "shard-1"):
        await store.create_if_absent(shard_id)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("UPDATE shardline_leases SET checkpoint = 'garbage' WHERE lease_key = 'shard-1'")
    connection.close()
    assert [lease.shard_id for lease in await store.list()] == ["shard-0"]  # logged and left out
    source = KinesisSource("s", store=store, owner="A", client=TwoShards([("k", b"x")] * 20), config=FAST)
    async with reading(source) as received:
        batch = await asyncio.wait_for(received.get(), BOUND)  # before: the source ended, raising
        assert batch.partition == "shard-0"
        assert source.shards == ["shard-0"]
    await store.close()


class RenewalsFail(MemoryCheckpointStore):
    """A store that stops answering renewals (unreachable, throttled) when told to."""

    failing = False

    async def renew(self, lease: Lease) -> Lease:
        if self.failing:
            raise TransientServiceError("store unreachable")
        return await super().renew(lease)


async def test_a_lease_that_cannot_be_renewed_for_three_rounds_ends_the_source() -> None:
    store = RenewalsFail()
    source = KinesisSource("s", store=store, owner="A", client=FakeKinesis([("k", b"x")] * 20), config=FAST)
    batches = source.batches()
    first = await asyncio.wait_for(anext(batches), BOUND)
    assert first.partition == "shard-0"
    store.failing = True
    # before: renewal warnings for ever while the shard was read, long after another worker
    # may have taken the lease; now the source (so Pipeline.run) raises, naming the shard
    with pytest.raises(CheckpointError, match="not renewed") as raised:
        async with asyncio.timeout(BOUND):
            async for _ in batches:
                pass
    assert isinstance(raised.value.__cause__, TransientServiceError)
    await source.close()
