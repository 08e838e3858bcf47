"""SHARD_END written but the lease release after it failing: the pipeline's retry finishes it.

``KinesisSource.checkpoint_end`` writes SHARD_END, then gives the lease up.  When the release
failed (a transient store error), the pipeline retried ``checkpoint_end`` at its next pass, and
the source, which had forgotten the shard after the write, refused it for good ("not read by
this source"): the run stopped.  Now the retry releases again; a shard the source never read
still errors.  Waits are bounded.
"""

from __future__ import annotations

import asyncio

import pytest

from consumers.checkpoint.base import Lease
from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.kinesis import KinesisSource, ReaderConfig
from consumers.pipeline import Pipeline, PipelineConfig
from shardline.errors import CheckpointError, TransientServiceError
from shardline.records import SHARD_END
from tests.unit.consumers.kinesis.stream_double import Stream, StreamClient
from tests.unit.consumers.pipeline_doubles import RecordingSink

BOUND = 5.0
FAST = ReaderConfig(lease_renew_interval=0.05, shard_discovery_interval=0.05)


class FirstReleaseFails(MemoryCheckpointStore):
    """The first release of ``shard`` fails transiently (the store unreachable for a moment)."""

    def __init__(self, shard: str) -> None:
        super().__init__()
        self.shard = shard
        self.failed = False

    async def release(self, lease: Lease) -> None:
        if lease.shard_id == self.shard and not self.failed:
            self.failed = True
            raise TransientServiceError("store unreachable")
        await super().release(lease)


async def _nothing() -> None:
    return None


async def test_a_shard_end_whose_release_failed_is_finished_by_the_retry() -> None:
    stream = Stream(1)
    stream.append("shard-0", 2)
    stream.split("shard-0")
    stream.append("shard-0-a", 1)
    store = FirstReleaseFails("shard-0")
    source = KinesisSource("s", store=store, owner="A", client=StreamClient(stream, _nothing), config=FAST)
    sink = RecordingSink()
    pipeline = Pipeline(source, sink, config=PipelineConfig(checkpoint_interval=0.01))
    run = asyncio.create_task(pipeline.run())
    try:
        async with asyncio.timeout(BOUND):
            while len(sink.written) < 3 and not run.done():
                await asyncio.sleep(0.01)
            parent = await store.get("shard-0")
            while parent is not None and parent.owner is not None and not run.done():
                await asyncio.sleep(0.01)
                parent = await store.get("shard-0")
    finally:
        await asyncio.wait_for(pipeline.close(), BOUND)
        stats = await asyncio.wait_for(run, BOUND)  # before: CheckpointError "not read by this source"
    assert store.failed
    assert parent is not None and parent.checkpoint == SHARD_END and parent.owner is None
    assert stats.partitions_ended == 1
    assert len(sink.written) == 3  # the parent's two records and the child's one


async def test_shard_end_of_a_shard_the_source_never_read_still_errors() -> None:
    source = KinesisSource("s", store=MemoryCheckpointStore(), owner="A", client=object(), config=FAST)
    with pytest.raises(CheckpointError, match="not read by this source"):
        await source.checkpoint_end("shard-9")
