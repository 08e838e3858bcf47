"""A ``CancelledError`` that nobody sent, met inside the pipeline's own tasks.

HTTP libraries can surface their own timeouts as ``CancelledError``; a lane or the checkpoint
loop that re-raised it ended as "cancelled" with nobody told, and ``run()`` waited for ever on
the lane's queue (or ran on without periodic checkpoints).  Every wait here is bounded, so a
hang fails the test instead of sticking.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from consumers.pipeline import Pipeline, PipelineConfig
from consumers.sinks.base import EntryResult
from consumers.sinks.memory import MemorySink
from shardline.errors import BackgroundTaskError
from shardline.records import ConsumedRecord, Position
from tests.unit.consumers.pipeline_doubles import RecordingDeadLetter, ScriptedSource, batch

BOUND = 5.0  # seconds; every scenario finishes in milliseconds when nothing hangs
FAST = PipelineConfig(checkpoint_interval=3600)


class CancelledInsideSink(MemorySink):
    """Its first write raises ``CancelledError`` without anyone cancelling it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def write(self, records: Sequence[ConsumedRecord]) -> list[EntryResult]:
        self.calls += 1
        if self.calls == 1:
            raise asyncio.CancelledError
        return await super().write(records)


async def test_a_sink_call_cancelled_inside_the_sink_is_a_failed_call_and_is_retried() -> None:
    source = ScriptedSource([batch("a", 1, 2), batch("a", 3, 2)])
    sink = CancelledInsideSink()
    dead = RecordingDeadLetter()
    stats = await asyncio.wait_for(Pipeline(source, sink, config=FAST, dead_letter=dead).run(), BOUND)
    assert len(sink.items) == 4 and stats.records_out == 4
    assert sink.calls >= 3  # the cancelled call, then its retry
    assert dead.entries == []  # waited out as an outage, not bisected into the dead letter
    assert source.last_checkpoint("a") == 4


async def test_a_lane_meeting_a_cancelled_error_nobody_sent_fails_the_run_with_the_cause() -> None:
    source = ScriptedSource([batch("a", 1, 2), batch("a", 3, 2)], endless=True)
    sink = MemorySink()
    pipeline = Pipeline(source, sink, config=FAST)

    async def write(*_: Any) -> int:
        raise asyncio.CancelledError  # from the lane's own code, not from a cancel

    pipeline._workflow.write = write  # type: ignore[method-assign]
    with pytest.raises(BackgroundTaskError, match="partition lane") as raised:
        await asyncio.wait_for(pipeline.run(), BOUND)
    assert isinstance(raised.value.__cause__, asyncio.CancelledError)
    assert source.last_checkpoint("a") is None  # nothing was written, nothing checkpointed
    assert source.close_calls == 1


async def test_a_checkpoint_loop_meeting_a_cancelled_error_nobody_sent_fails_the_run() -> None:
    class CancelledInsideStore(ScriptedSource):
        async def checkpoint(self, partition: str, position: Position) -> bool:
            raise asyncio.CancelledError  # the lease table client's own timeout

    source = CancelledInsideStore([batch("a", 1, 2)], endless=True)
    pipeline = Pipeline(source, MemorySink(), config=PipelineConfig(checkpoint_interval=0.01))
    with pytest.raises(BackgroundTaskError, match="checkpoint loop"):
        await asyncio.wait_for(pipeline.run(), BOUND)
    assert source.close_calls == 1


async def test_a_transform_raising_a_cancelled_error_itself_dead_letters_that_record() -> None:
    """Raised as is, it ended run() as if run() had been cancelled."""

    async def transform(record: ConsumedRecord) -> ConsumedRecord:
        if record.position.sequence_number == "2":  # type: ignore[attr-defined]
            raise asyncio.CancelledError  # e.g. awaiting a future someone else cancelled
        return record

    source = ScriptedSource([batch("a", 1, 3)])
    sink, dead = MemorySink(), RecordingDeadLetter()
    pipeline = Pipeline(source, sink, config=FAST, dead_letter=dead, transform=transform)
    stats = await asyncio.wait_for(pipeline.run(), BOUND)
    assert stats.records_out == 2 and len(sink.items) == 2
    assert [entry.error_type for entry in dead.entries] == ["CancelledError"]
    assert source.last_checkpoint("a") == 3
