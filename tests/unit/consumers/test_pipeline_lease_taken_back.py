"""A partition whose lease was lost and then taken back is read, written and checkpointed again.

Before, the pipeline dropped every later batch of a partition once a checkpoint of it was
refused with ``LeaseLostError``: a Kinesis source that takes the lease back after the other
worker died delivered the shard's records to nobody.  Waits are bounded (``wait_for``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from consumers.pipeline import Pipeline, PipelineConfig
from consumers.source import SourceBatch
from tests.unit.consumers.pipeline_doubles import RecordingSink, ScriptedSource, batch

BOUND = 5.0


class LostThenTakenBack(ScriptedSource):
    """Yields ``a`` 1-3, loses its lease (the next checkpoint is refused), then takes it back
    from the other worker's checkpoint at 2 and yields ``a`` 3-6."""

    def __init__(self) -> None:
        super().__init__([], endless=True)
        self.refused = asyncio.Event()

    async def batches(self) -> AsyncIterator[SourceBatch]:
        self.lose("a")
        yield batch("a", 1, 3)
        await self.refused.wait()
        self.lost.discard("a")
        yield batch("a", 3, 4)
        await self._stopped.wait()

    async def checkpoint(self, partition: str, position: Any) -> bool:
        if partition in self.lost:
            self.refused.set()
        return await super().checkpoint(partition, position)


async def test_a_partition_taken_back_is_written_and_checkpointed_again() -> None:
    source = LostThenTakenBack()
    sink = RecordingSink()
    pipeline = Pipeline(source, sink, config=PipelineConfig(checkpoint_interval=0.01))
    run = asyncio.create_task(pipeline.run())
    try:
        async with asyncio.timeout(BOUND):
            while source.last_checkpoint("a") != 6:
                await asyncio.sleep(0.01)
    finally:
        await asyncio.wait_for(pipeline.close(), BOUND)
        stats = await asyncio.wait_for(run, BOUND)
    assert stats.partitions_lost == 1
    written = [int(r.position.sequence_number) for write in sink.writes for r in write]  # type: ignore[attr-defined]
    assert written == [1, 2, 3, 3, 4, 5, 6]  # before: 3-6 of the new hold dropped
