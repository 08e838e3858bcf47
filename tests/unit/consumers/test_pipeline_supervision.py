"""Every consumer-side background task and user callback, made to raise (RELIABILITY row 22).

For each one: ``Pipeline.run()`` (or ``close()``) returns or raises the cause within a bound
enforced by ``asyncio.wait_for`` (a hang fails the test), and nothing is checkpointed past a
record that was not resolved.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.kinesis import KinesisSource, ReaderConfig
from consumers.pipeline import Pipeline, PipelineConfig
from consumers.replay.job import ReplayJob
from consumers.sinks.base import EntryResult
from consumers.sinks.deadletter import MemoryDeadLetter
from consumers.sinks.memory import MemorySink
from consumers.source import SourceBatch
from shardline.errors import SinkError, TransientServiceError, ValidationError
from shardline.metrics import GuardedObserver
from shardline.records import ConsumedRecord, KinesisPosition
from tests.unit.consumers.kinesis.test_kinesis_polling_unit import FakeKinesis, InstantSleep
from tests.unit.consumers.pipeline_doubles import EventLog, RecordingDeadLetter, ScriptedSource, batch, record

BOUND = 5.0  # seconds; every scenario finishes in milliseconds when nothing hangs
FAST = PipelineConfig(checkpoint_interval=3600)


class RaisingObserver:
    def __init__(self) -> None:
        self.calls = 0

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.calls += 1
        raise RuntimeError("observer bug")


def _sequences(records: Sequence[ConsumedRecord]) -> list[int]:
    return [int(r.position.sequence_number) for r in records]  # type: ignore[attr-defined]


async def test_a_raising_observer_is_isolated_and_stops_nothing(caplog: pytest.LogCaptureFixture) -> None:
    source = ScriptedSource([batch("a", 1, 3), batch("b", 1, 2)])
    sink = MemorySink(observer=RaisingObserver())
    observer = RaisingObserver()
    pipeline = Pipeline(source, sink, config=FAST, observer=observer)
    stats = await asyncio.wait_for(pipeline.run(), BOUND)
    assert stats.records_out == 5 and len(sink.items) == 5
    assert observer.calls > 1
    isolated = pipeline._observer
    assert isinstance(isolated, GuardedObserver) and isolated.failures == observer.calls
    logged = [r for r in caplog.records if r.getMessage().startswith("metrics observer")]
    assert len(logged) == 2  # once per isolated observer (pipeline's and sink's), not per event
    assert source.last_checkpoint("a") == 3 and source.last_checkpoint("b") == 2


async def test_a_raising_transform_dead_letters_that_record_only() -> None:
    def transform(item: ConsumedRecord) -> ConsumedRecord:
        if item.position.sequence_number == "2":  # type: ignore[attr-defined]
            raise KeyError("no field 'device'")
        return item

    source = ScriptedSource([batch("a", 1, 3)])
    dead = RecordingDeadLetter()
    sink = MemorySink()
    stats = await asyncio.wait_for(
        Pipeline(source, sink, config=FAST, transform=transform, dead_letter=dead).run(), BOUND
    )
    assert [(e.error_type, e.destination, e.source_position.identity) for e in dead.entries] == [
        ("KeyError", "transform", record("a", 2).identity)
    ]
    assert stats.records_out == 2 and stats.dead_lettered == 1
    assert source.last_checkpoint("a") == 3


async def test_a_failing_lane_stops_the_run_with_its_cause_and_checkpoints_only_what_is_written() -> None:
    class BrokenSink(MemorySink):
        async def write(self, records: Sequence[ConsumedRecord]) -> list[EntryResult]:
            if records[0].position.partition == "b":
                return []  # a sink bug: no results at all
            return await super().write(records)

    source = ScriptedSource([batch("a", 1, 2), batch("b", 1, 2), batch("a", 3, 2)], endless=True)
    pipeline = Pipeline(source, BrokenSink(), config=FAST, dead_letter=RecordingDeadLetter())
    with pytest.raises(SinkError, match="results"):
        await asyncio.wait_for(pipeline.run(), BOUND)
    assert source.last_checkpoint("b") is None
    assert source.close_calls == 1


async def test_a_failing_source_stops_the_run_with_its_cause_after_finishing_what_was_read() -> None:
    class FailingSource(ScriptedSource):
        async def batches(self) -> AsyncIterator[SourceBatch]:
            yield batch("a", 1, 3)
            raise ConnectionResetError("reader died")

    source = FailingSource([])
    sink = MemorySink()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(Pipeline(source, sink, config=FAST).run(), BOUND)
    assert len(sink.items) == 3 and source.last_checkpoint("a") == 3


async def test_close_with_a_timeout_abandons_a_hung_write_and_run_returns() -> None:
    class HungSink(MemorySink):
        async def write(self, records: Sequence[ConsumedRecord]) -> list[EntryResult]:
            await asyncio.Event().wait()  # never answers
            raise AssertionError("unreachable")

    source = ScriptedSource([batch("a", 1, 3)], endless=True)
    pipeline = Pipeline(source, HungSink(), config=FAST)
    run = asyncio.create_task(pipeline.run())
    await asyncio.wait_for(source.all_yielded.wait(), BOUND)
    await asyncio.wait_for(pipeline.close(timeout=0.05), BOUND)
    assert run.done()
    with pytest.raises(SinkError, match="closing"):
        await run
    assert source.last_checkpoint("a") is None  # nothing was written: nothing acknowledged


async def test_the_deadline_bounds_an_outage() -> None:
    sink = MemorySink()
    sink.fail_calls(TransientServiceError("connection refused"), times=10_000)
    source = ScriptedSource([batch("a", 1, 3)])
    loop = asyncio.get_running_loop()
    pipeline = Pipeline(source, sink, config=FAST, deadline=loop.time() + 0.2)
    with pytest.raises(SinkError, match="deadline"):
        await asyncio.wait_for(pipeline.run(), BOUND)
    assert source.last_checkpoint("a") is None


async def test_lease_renewal_failing_surfaces_through_run() -> None:
    class BrokenRenewals(MemoryCheckpointStore):
        async def renew(self, lease: Any) -> Any:
            raise RuntimeError("lease table schema changed under us")

    client = FakeKinesis([(f"k{i}", b"x") for i in range(5)], limit=10)
    fake = InstantSleep()
    source = KinesisSource(
        "s",
        store=BrokenRenewals(),
        owner="w",
        client=client,
        config=ReaderConfig(lease_renew_interval=0.01),
        sleep=fake,
        clock=fake.clock,
    )
    with pytest.raises(RuntimeError, match="schema"):
        await asyncio.wait_for(Pipeline(source, MemorySink(), config=FAST).run(), BOUND)


# --- replay: a bounded source through the same pipeline -------------------------------------------


class ListReader:
    """A range reader over in-memory partitions; ``fail`` makes one partition's read raise."""

    def __init__(self, partitions: dict[str, list[ConsumedRecord]], *, fail: str | None = None) -> None:
        self._partitions = partitions
        self._fail = fail

    async def partitions(self) -> list[str]:
        return sorted(self._partitions)

    async def read(
        self, partition: str, after: str | None
    ) -> AsyncIterator[tuple[Sequence[ConsumedRecord], str]]:
        records = self._partitions[partition]
        done = int(after) if after is not None else 0
        for start in range(done, len(records), 2):
            if partition == self._fail and start > 0:
                raise ConnectionResetError("archive read failed")
            yield records[start : start + 2], str(min(start + 2, len(records)))


class PoisonRejectingSink(MemorySink):
    """Like a real sink, refuses to encode a payload it cannot map."""

    def encode(self, item: ConsumedRecord) -> ConsumedRecord:
        if item.data == b"poison":
            raise ValidationError("payload is not JSON")
        return item


def _replay_records(partition: str, count: int, poison_at: int | None = None) -> list[ConsumedRecord]:
    return [
        ConsumedRecord(
            b"poison" if i == poison_at else f"r{i}".encode(),
            "k",
            KinesisPosition("archive", partition, str(i)),
        )
        for i in range(1, count + 1)
    ]


async def test_replay_applies_the_transform_and_dead_letters_the_poison_record() -> None:
    def upper(item: ConsumedRecord) -> ConsumedRecord:
        if item.data == b"poison":
            return item
        return ConsumedRecord(item.data.upper(), item.partition_key, item.position)

    reader = ListReader({"p0": _replay_records("p0", 5, poison_at=3), "p1": _replay_records("p1", 4)})
    sink = PoisonRejectingSink()
    dead = MemoryDeadLetter()
    store = MemoryCheckpointStore()
    job = ReplayJob(reader, sink, store, transform=upper, dead_letter=dead)
    summary = await asyncio.wait_for(job.run(), BOUND)

    (entry,) = dead.entries.values()
    assert entry.record.data == b"poison" and entry.error_type == "ValidationError"
    assert entry.source_position.identity == _replay_records("p0", 5)[2].identity
    assert sorted(v.decode() for v in sink.items.values()) == sorted(
        [f"R{i}" for i in (1, 2, 4, 5)] + [f"R{i}" for i in range(1, 5)]
    )
    assert (summary.read, summary.written, summary.dead_lettered) == (9, 8, 1)
    rerun = await asyncio.wait_for(ReplayJob(reader, sink, store).run(), BOUND)
    assert (rerun.partitions_skipped, rerun.read) == (2, 0)  # both partitions ended (SHARD_END)


async def test_replay_surfaces_a_failing_partition_reader_and_keeps_its_progress() -> None:
    reader = ListReader({"p0": _replay_records("p0", 6), "p1": _replay_records("p1", 6)}, fail="p1")
    store = MemoryCheckpointStore()
    job = ReplayJob(reader, MemorySink(), store, concurrency=2)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(job.run(), BOUND)
    healthy = ListReader({"p0": _replay_records("p0", 6), "p1": _replay_records("p1", 6)})
    resumed = await asyncio.wait_for(ReplayJob(healthy, MemorySink(), store).run(), BOUND)
    assert resumed.read < 12  # the rerun resumed from checkpoints instead of starting over


# --- the checkpoint loop --------------------------------------------------------------------------


class GatedSink(MemorySink):
    """Writes everything except the records of ``held`` from ``from_sequence`` on: those wait
    until the write is aborted (so they stay unwritten)."""

    def __init__(self, held: str, from_sequence: int) -> None:
        super().__init__()
        self._held = held
        self._from = from_sequence

    async def write(self, records: Sequence[ConsumedRecord]) -> list[EntryResult]:
        first = records[0].position
        if first.partition == self._held and int(first.sequence_number) >= self._from:  # type: ignore[attr-defined]
            await asyncio.Event().wait()  # released only by the workflow's abort
        return await super().write(records)


async def test_a_checkpoint_loop_bug_stops_the_run_with_its_cause_and_passes_no_unwritten_record() -> None:
    class BuggyCheckpoints(ScriptedSource):
        """Checkpointing ``a`` hits a programming error, not a store error: no pass can handle it."""

        async def checkpoint(self, partition: str, position: Any) -> bool:
            if partition == "a":
                raise TypeError("checkpoint() got an unexpected keyword argument")
            return await super().checkpoint(partition, position)

    source = BuggyCheckpoints([batch("b", 1, 2), batch("a", 1, 3), batch("b", 3, 2)], endless=True)
    sink = GatedSink("b", from_sequence=3)
    pipeline = Pipeline(source, sink, config=PipelineConfig(checkpoint_interval=0.01))
    with pytest.raises(TypeError, match="unexpected keyword"):
        await asyncio.wait_for(pipeline.run(), BOUND)
    assert (source.last_checkpoint("b") or 0) <= 2  # b3 and b4 were never written
    assert record("b", 3).identity not in sink.items
    assert source.close_calls == 1


async def test_a_checkpoint_store_outage_keeps_the_run_going_and_checkpoints_later() -> None:
    class UnavailableStore(ScriptedSource):
        """The lease table answers 503 for the first three checkpoints, then recovers."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.refused = 0
            self.recovered = asyncio.Event()

        async def checkpoint(self, partition: str, position: Any) -> bool:
            if self.refused < 3:
                self.refused += 1
                raise TransientServiceError("lease table unavailable")
            written = await super().checkpoint(partition, position)
            self.recovered.set()
            return written

    source = UnavailableStore([batch("a", 1, 3)], endless=True)
    observer = EventLog()
    config = PipelineConfig(checkpoint_interval=0.01)
    pipeline = Pipeline(source, MemorySink(), config=config, observer=observer)
    run = asyncio.create_task(pipeline.run())
    await asyncio.wait_for(source.recovered.wait(), BOUND)
    assert not run.done()  # the outage neither stopped nor failed the run
    assert source.last_checkpoint("a") == 3
    await asyncio.wait_for(pipeline.close(), BOUND)
    stats = await asyncio.wait_for(run, BOUND)
    assert source.refused == 3 and observer.total("checkpoint_errors") == 3
    assert stats.records_out == 3 and source.last_checkpoint("a") == 3
