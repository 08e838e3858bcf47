"""A replay job whose partition lease another run of the same job took stops, typed, at once.

A bounded job hands partitions to nobody, so a lease it loses was taken by a second run over
the same checkpoint namespace (a Python caller's, or a slice runner that took over a stalled
one).  The job used to mark the partition lost and read on: it wrote the partition a second
time beside the other run and reported success; and a child shard of a partition lost so
waited for its parent's end, which only the other run records, forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from consumers.checkpoint.base import Lease
from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.pipeline import PipelineConfig
from consumers.replay.job import ReplayJob
from shardline.errors import LeaseLostError
from shardline.records import ConsumedRecord, KinesisPosition
from tests.unit.consumers.pipeline_doubles import RecordingSink

BOUND = 10.0
FAST = PipelineConfig(partition_concurrency=1, checkpoint_interval=0.05)


class _Lineage:
    """``parent`` (three records, the last two behind ``gate``) and its child ``child``."""

    def __init__(self, gate: asyncio.Event) -> None:
        self.gate = gate

    async def partitions(self) -> list[str]:
        return ["parent", "child"]

    def parents(self, partition: str) -> tuple[str, ...]:
        return ("parent",) if partition == "child" else ()

    async def read(
        self, partition: str, after: str | None
    ) -> AsyncIterator[tuple[Sequence[ConsumedRecord], str]]:
        for sequence in range(int(after or 0) + 1, 4):
            if partition == "parent" and sequence == 2:
                await self.gate.wait()
            position = KinesisPosition("s", partition, str(sequence))
            yield [ConsumedRecord(b"%d" % sequence, "k", position)], str(sequence)


async def _owner_of(store: MemoryCheckpointStore, partition: str, owner: str) -> None:
    async with asyncio.timeout(BOUND):
        while (lease := await store.get(partition)) is None or lease.owner != owner:
            await asyncio.sleep(0.01)


async def test_a_job_whose_parent_lease_was_taken_stops_instead_of_waiting_for_it_forever() -> None:
    store, gate = MemoryCheckpointStore(), asyncio.Event()
    first = ReplayJob(_Lineage(gate), RecordingSink(), store, owner="first", config=FAST)
    running = asyncio.create_task(first.run())
    await _owner_of(store, "parent", "first")
    second = ReplayJob(_Lineage(gate), RecordingSink(), store, owner="second", config=FAST)
    other = asyncio.create_task(second.run())
    await _owner_of(store, "parent", "second")
    gate.set()
    assert (await asyncio.wait_for(other, BOUND)).read == 6  # the run that holds the leases finishes
    # before: the first run waited for "parent" to end, which only the second recorded: a hang
    with pytest.raises(LeaseLostError, match="another run of this job"):
        await asyncio.wait_for(running, BOUND)


class _OneShard:
    """Three batches of one shard: the first once ``start`` is set, the others once ``gate`` is."""

    def __init__(self, start: asyncio.Event, gate: asyncio.Event) -> None:
        self.start = start
        self.gate = gate

    async def partitions(self) -> list[str]:
        return ["shard"]

    async def read(
        self, partition: str, after: str | None
    ) -> AsyncIterator[tuple[Sequence[ConsumedRecord], str]]:
        await self.start.wait()
        for sequence in range(int(after or 0) + 1, 4):
            if sequence > 1:
                await self.gate.wait()
            yield (
                [ConsumedRecord(b"%d" % sequence, "k", KinesisPosition("s", partition, str(sequence)))],
                str(sequence),
            )


class _Watched(MemoryCheckpointStore):
    """Opens ``refused`` when a checkpoint is refused (the lease was taken)."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = asyncio.Event()

    async def checkpoint(self, lease: Lease, sequence_number: str, sub_sequence_number: int = 0) -> Lease:
        try:
            return await super().checkpoint(lease, sequence_number, sub_sequence_number)
        except LeaseLostError:
            self.refused.set()
            raise


async def test_a_job_whose_lease_was_taken_stops_instead_of_reading_on_and_reporting_success() -> None:
    store, start = _Watched(), asyncio.Event()
    reader = _OneShard(start, store.refused)  # the rest of the shard is read after the refusal
    job = ReplayJob(reader, RecordingSink(), store, owner="first", config=FAST)
    running = asyncio.create_task(job.run())
    await _owner_of(store, "shard", "first")
    await store.acquire("shard", "second")  # another run of the job takes the shard
    start.set()
    # before: the job read and wrote the rest of the shard and returned a summary
    with pytest.raises(LeaseLostError, match="another run of this job"):
        await asyncio.wait_for(running, BOUND)
    assert (await store.get("shard")).owner == "second"  # type: ignore[union-attr]
