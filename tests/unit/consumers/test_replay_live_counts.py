"""A sliced replay's live counts (what each heartbeat adds to the job ledger, and so what
`replay status` shows) follow the writes while the slice runs, not only when it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.pipeline import PipelineConfig
from consumers.replay.job import ReplayJob
from consumers.replay.slices import _live_counts
from shardline.records import ConsumedRecord
from tests.unit.consumers.pipeline_doubles import RecordingSink, record


class GatedReader:
    """One partition: a first batch, then nothing until ``gate`` opens, then the rest."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def partitions(self) -> list[str]:
        return ["p"]

    async def read(
        self, partition: str, after: str | None
    ) -> AsyncIterator[tuple[Sequence[ConsumedRecord], str]]:
        yield [record(partition, sequence) for sequence in range(3)], "3"
        await self.gate.wait()
        yield [record(partition, sequence) for sequence in range(3, 5)], "5"


async def _until_written(job: ReplayJob, count: int, *, within: float) -> dict[str, int]:
    """Poll the live counts as a heartbeat does, for at most ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    counts = _live_counts(job)
    while counts["written"] < count and loop.time() < deadline:
        await asyncio.sleep(0.02)
        counts = _live_counts(job)
    return counts


def test_written_counts_grow_while_the_job_runs() -> None:
    async def scenario() -> None:
        reader = GatedReader()
        sink = RecordingSink()
        job = ReplayJob(
            reader,
            sink,
            MemoryCheckpointStore(namespace="replay-live"),
            # checkpoints far apart: the counts must not wait for one
            config=PipelineConfig(partition_concurrency=1, checkpoint_interval=60.0),
        )
        running = asyncio.create_task(job.run())
        try:
            # the run is held at the gate: before the fix the counts stayed 0 until it ended
            during = await _until_written(job, 3, within=5.0)
            assert not running.done()
            assert during == {"written": 3, "duplicates": 0, "dead_lettered": 0}
        finally:
            reader.gate.set()
        summary = await asyncio.wait_for(running, timeout=10.0)
        assert summary.written == 5 and _live_counts(job)["written"] == 5

    asyncio.run(scenario())
