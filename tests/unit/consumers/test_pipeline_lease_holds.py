"""A partition read under a new hold of its lease starts afresh, whether the pipeline heard of
the loss or not.

A source may lose a lease and take it back (from the other worker's checkpoint, further on)
between two checkpoint passes: no checkpoint was refused, so the pipeline never learnt of the
loss.  Before, the old hold's tickets and the new hold's shared one tracker: finished work of
the old hold was checkpointed below the new holder's position (a move backwards, re-reading
what the other worker had done), and unfinished work of it held the new hold's watermark back.
Now each batch says its hold and a new one starts the partition afresh.  Waits are bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from consumers.pipeline import Pipeline, PipelineConfig
from consumers.source import SourceBatch
from shardline.records import ConsumedRecord
from tests.unit.consumers.pipeline_doubles import RecordingSink, ScriptedSource, batch

BOUND = 5.0
CONFIG = PipelineConfig(checkpoint_interval=0.01, partition_concurrency=2, drain_timeout=0.1)
"""Two writes in flight per partition, so the old hold's and the new hold's overlap."""


class StuckAt(RecordingSink):
    """A write starting at sequence ``stuck`` hangs (a slow destination); the others go through."""

    def __init__(self, stuck: int) -> None:
        super().__init__()
        self.stuck = stuck
        self.stuck_started = asyncio.Event()

    async def write(self, batch: Sequence[ConsumedRecord]) -> None:
        if int(batch[0].position.sequence_number) == self.stuck:  # type: ignore[union-attr]
            self.write_started.set()
            self.stuck_started.set()
            await asyncio.Event().wait()
        await super().write(batch)


class TakenBackUnnoticed(ScriptedSource):
    """Yields ``a`` 1-3 under hold 0; once the sink is writing, loses the lease and takes it
    back from the other worker's checkpoint at 5 (no checkpoint of it was refused meanwhile),
    then yields ``a`` 6-7 under hold 1."""

    def __init__(self, sink: RecordingSink) -> None:
        super().__init__([], endless=True)
        self.sink = sink

    async def batches(self) -> AsyncIterator[SourceBatch]:
        yield batch("a", 1, 3)
        await self.sink.write_started.wait()
        yield SourceBatch("a", batch("a", 6, 2).records, hold=1)
        await self._stopped.wait()


def _checkpointed(source: ScriptedSource) -> list[int]:
    return [int(position.sequence_number) for _, position in source.checkpoints]  # type: ignore[union-attr]


async def test_old_hold_work_is_never_checkpointed_under_the_new_hold() -> None:
    sink = StuckAt(6)
    source = TakenBackUnnoticed(sink)
    pipeline = Pipeline(source, sink, config=CONFIG)
    run = asyncio.create_task(pipeline.run())
    try:
        await asyncio.wait_for(sink.stuck_started.wait(), BOUND)
        async with asyncio.timeout(BOUND):
            while not sink.writes:  # the old hold's 1-3 written, the new hold's 6-7 stuck
                await asyncio.sleep(0.01)
    finally:
        await asyncio.wait_for(pipeline.close(), BOUND)
        await asyncio.wait_for(run, BOUND)
    # before: 3 was checkpointed under the new hold, behind the other worker's 5
    assert _checkpointed(source) == []


async def test_old_hold_work_does_not_hold_the_new_holds_watermark_back() -> None:
    sink = StuckAt(1)
    source = TakenBackUnnoticed(sink)
    pipeline = Pipeline(source, sink, config=CONFIG)
    run = asyncio.create_task(pipeline.run())
    try:
        async with asyncio.timeout(BOUND):
            # before: the stuck ticket of the old hold kept 6-7 from ever being checkpointed
            while source.last_checkpoint("a") != 7:
                await asyncio.sleep(0.01)
    finally:
        await asyncio.wait_for(pipeline.close(), BOUND)
        await asyncio.wait_for(run, BOUND)
    assert _checkpointed(source) == [7]
