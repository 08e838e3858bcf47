"""A replay job's progress callback that raises is contained: the job reads and writes on.

The callback ran inside each partition reader, so a failing progress display (a closed
terminal, a bug in it) ended the whole job as if the source had failed.
"""

from __future__ import annotations

import asyncio

import pytest

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.replay.job import ReplayJob
from consumers.sinks.memory import MemorySink
from tests.unit.consumers.test_pipeline_supervision import ListReader, _replay_records

BOUND = 5.0  # seconds; only there so that a hang fails instead of sticking


@pytest.mark.parametrize("error", [RuntimeError("display gone"), asyncio.CancelledError()])
async def test_a_raising_progress_callback_stops_nothing_and_is_logged_once(
    error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[tuple[str, int]] = []

    def on_progress(partition: str, count: int) -> None:
        calls.append((partition, count))
        raise error

    reader = ListReader({"p0": _replay_records("p0", 5), "p1": _replay_records("p1", 4)})
    sink = MemorySink()
    store = MemoryCheckpointStore()
    job = ReplayJob(reader, sink, store, concurrency=2, on_progress=on_progress)
    summary = await asyncio.wait_for(job.run(), BOUND)  # before: raised the callback's error
    assert (summary.read, summary.written) == (9, 9) and len(sink.items) == 9
    assert sum(count for _, count in calls) == 9
    assert job.source.progress_failures == len(calls)
    warnings = [r for r in caplog.records if r.getMessage().startswith("the progress callback raised")]
    assert len(warnings) == 1
    assert all(lease.is_shard_end for lease in await store.list())
