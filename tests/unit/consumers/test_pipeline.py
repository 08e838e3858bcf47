"""Pipeline behaviour against in-memory doubles: ordering, back-pressure, poison records,
checkpoints, lease loss, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence

import pytest

from consumers.pipeline import Pipeline, PipelineConfig, run_until_signal
from shardline.errors import (
    ConfigurationError,
    ResourceNotFoundError,
    SinkError,
    ThrottledError,
    TransientServiceError,
    ValidationError,
)
from shardline.records import ConsumedRecord, KinesisPosition
from shardline.retry import RetryPolicy
from tests.unit.consumers.pipeline_doubles import (
    EventLog,
    RecordingDeadLetter,
    RecordingSink,
    ScriptedSource,
    batch,
)

NO_WAIT = RetryPolicy(max_attempts=None, deadline=None, initial_backoff=0.0, max_backoff=0.0)
FAST = PipelineConfig(checkpoint_interval=3600, sink_retry=NO_WAIT)


def _sequences(records: Sequence[ConsumedRecord]) -> list[int]:
    positions = [r.position for r in records]
    return [int(p.sequence_number) for p in positions if isinstance(p, KinesisPosition)]


async def test_records_flow_in_order_and_are_checkpointed_on_shutdown() -> None:
    source = ScriptedSource([batch("a", 1, 3), batch("b", 1, 2), batch("a", 4, 2, millis_behind=1500)])
    sink = RecordingSink()
    observer = EventLog()
    stats = await Pipeline(source, sink, config=FAST, observer=observer).run()
    written_a = [r for write in sink.writes for r in write if r.position.partition == "a"]
    assert _sequences(written_a) == [1, 2, 3, 4, 5]
    assert source.last_checkpoint("a") == 5
    assert source.last_checkpoint("b") == 2
    assert (stats.records_in, stats.records_out) == (7, 7)
    assert observer.total("records_in") == 7
    assert observer.total("records_out") == 7
    assert ("iterator_age_ms", 1500, {"partition": "a"}) in observer.events


async def test_large_source_batches_are_split_for_the_sink() -> None:
    source = ScriptedSource([batch("a", 1, 25)])
    sink = RecordingSink()
    config = PipelineConfig(checkpoint_interval=3600, max_sink_batch_records=10)
    await Pipeline(source, sink, config=config).run()
    assert [len(write) for write in sink.writes] == [10, 10, 5]
    assert source.last_checkpoint("a") == 25


async def test_transform_changes_drops_and_dead_letters_records() -> None:
    def transform(item: ConsumedRecord) -> ConsumedRecord | None:
        sequence = int(item.position.sequence_number)  # type: ignore[union-attr]
        if sequence == 2:
            return None
        if sequence == 3:
            raise ValueError("cannot parse")
        return ConsumedRecord(b"changed", item.partition_key, item.position)

    source = ScriptedSource([batch("a", 1, 4)])
    sink = RecordingSink()
    dead_letter = RecordingDeadLetter()
    stats = await Pipeline(source, sink, config=FAST, transform=transform, dead_letter=dead_letter).run()
    assert _sequences(sink.writes[0]) == [1, 4]
    assert {r.data for r in sink.writes[0]} == {b"changed"}
    assert [_sequences([e.record]) for e in dead_letter.entries] == [[3]]
    assert dead_letter.entries[0].error_type == "ValueError"
    assert stats.filtered == 1
    assert source.last_checkpoint("a") == 4


async def test_async_transform_is_awaited() -> None:
    async def transform(item: ConsumedRecord) -> ConsumedRecord | None:
        return ConsumedRecord(item.data.upper(), item.partition_key, item.position)

    source = ScriptedSource([batch("a", 1, 2)])
    sink = RecordingSink()
    await Pipeline(source, sink, config=FAST, transform=transform).run()
    assert {r.data for r in sink.writes[0]} == {b"X"}


async def test_poison_record_is_bisected_to_dead_letter_and_shard_moves_on() -> None:
    """RELIABILITY row 16."""

    def fail(records: Sequence[ConsumedRecord]) -> BaseException | None:
        if 5 in _sequences(records):
            return ValidationError("record rejected by the sink")
        return None

    source = ScriptedSource([batch("a", 1, 8), batch("a", 9, 2)])
    sink = RecordingSink(fail)
    dead_letter = RecordingDeadLetter()
    observer = EventLog()
    stats = await Pipeline(source, sink, config=FAST, dead_letter=dead_letter, observer=observer).run()
    assert sorted(_sequences(list(sink.written.values()))) == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert len(dead_letter.entries) == 1
    entry = dead_letter.entries[0]
    assert _sequences([entry.record]) == [5]
    assert entry.error_type == "ValidationError"
    assert "rejected" in entry.reason
    assert entry.attempts == 1  # a rejection is not retried: retrying cannot fix it
    assert stats.dead_lettered == 1
    assert observer.total("dead_lettered") == 1
    assert source.last_checkpoint("a") == 10


async def test_retriable_errors_are_retried_before_bisecting() -> None:
    failures = iter([ThrottledError("slow down"), ThrottledError("slow down")])

    def fail(records: Sequence[ConsumedRecord]) -> BaseException | None:
        return next(failures, None)

    source = ScriptedSource([batch("a", 1, 4)])
    sink = RecordingSink(fail)
    observer = EventLog()
    stats = await Pipeline(source, sink, config=FAST, observer=observer).run()
    assert stats.retries == 2
    assert observer.total("retries") == 2
    assert len(sink.writes) == 1
    assert stats.dead_lettered == 0


async def test_non_retriable_error_is_not_retried() -> None:
    def fail(records: Sequence[ConsumedRecord]) -> BaseException | None:
        return ValidationError("never") if len(records) == 1 else None

    source = ScriptedSource([batch("a", 1, 1)])
    sink = RecordingSink(fail)
    dead_letter = RecordingDeadLetter()
    await Pipeline(source, sink, config=FAST, dead_letter=dead_letter).run()
    assert sink.attempts == 1
    assert len(dead_letter.entries) == 1


async def test_without_dead_letter_a_poison_record_stops_the_pipeline_before_its_checkpoint() -> None:
    def fail(records: Sequence[ConsumedRecord]) -> BaseException | None:
        return ValidationError("bad") if 3 in _sequences(records) else None

    source = ScriptedSource([batch("a", 1, 2), batch("a", 3, 2), batch("a", 5, 2)])
    sink = RecordingSink(fail)
    with pytest.raises(SinkError):
        await Pipeline(source, sink, config=FAST).run()
    checkpoint = source.last_checkpoint("a")
    assert checkpoint is not None
    assert checkpoint < 3
    assert source.stop_calls >= 1


async def test_a_missing_destination_stops_once_without_bisecting_or_dead_lettering() -> None:
    def fail(records: Sequence[ConsumedRecord]) -> BaseException | None:
        return ResourceNotFoundError("no table", code="ResourceNotFoundException", service="dynamodb")

    source = ScriptedSource([batch("a", 1, 16)])
    sink = RecordingSink(fail)
    dead_letter = RecordingDeadLetter()
    with pytest.raises(SinkError, match="cannot be written") as raised:
        await Pipeline(source, sink, config=FAST, dead_letter=dead_letter).run()
    assert isinstance(raised.value.__cause__, ResourceNotFoundError)
    assert sink.attempts == 1  # one write, no bisection
    assert dead_letter.entries == []
    assert source.last_checkpoint("a") is None


async def test_broken_dead_letter_is_a_sink_error() -> None:
    source = ScriptedSource([batch("a", 1, 1)])
    sink = RecordingSink(lambda records: ValidationError("bad"))
    with pytest.raises(SinkError):
        await Pipeline(source, sink, config=FAST, dead_letter=RecordingDeadLetter(broken=True)).run()
    assert source.last_checkpoint("a") is None


async def test_dead_letter_outage_is_waited_out() -> None:
    source = ScriptedSource([batch("a", 1, 2)])
    sink = RecordingSink(lambda records: ValidationError("bad") if 2 in _sequences(records) else None)
    dead_letter = RecordingDeadLetter(unavailable_for=3)
    stats = await Pipeline(source, sink, config=FAST, dead_letter=dead_letter).run()
    assert [_sequences([entry.record]) for entry in dead_letter.entries] == [[2]]
    assert stats.retries == 3
    assert source.last_checkpoint("a") == 2


async def test_end_of_partition_checkpoints_shard_end_after_everything_before() -> None:
    source = ScriptedSource([batch("parent", 1, 3), batch("parent", 4, 1, end=True), batch("child", 1, 1)])
    sink = RecordingSink()
    stats = await Pipeline(source, sink, config=FAST).run()
    assert source.ended == ["parent"]
    assert stats.partitions_ended == 1
    assert source.last_checkpoint("child") == 1


async def test_empty_end_batch_still_ends_the_partition() -> None:
    source = ScriptedSource([batch("a", 1, 2), batch("a", 3, 0, end=True)])
    await Pipeline(source, RecordingSink(), config=FAST).run()
    assert source.ended == ["a"]


async def test_shard_end_waits_for_a_failed_earlier_batch() -> None:
    def fail(records: Sequence[ConsumedRecord]) -> BaseException | None:
        return ValidationError("bad") if 1 in _sequences(records) else None

    source = ScriptedSource([batch("a", 1, 1), batch("a", 2, 1, end=True)])
    with pytest.raises(SinkError):
        await Pipeline(source, RecordingSink(fail), config=FAST).run()
    assert source.ended == []


async def test_lost_lease_is_never_checkpointed_again() -> None:
    source = ScriptedSource([batch("a", 1, 2), batch("b", 1, 2)])
    source.lose("a")
    sink = RecordingSink()
    stats = await Pipeline(source, sink, config=FAST).run()
    assert source.last_checkpoint("a") is None
    assert source.last_checkpoint("b") == 2
    assert stats.partitions_lost == 1


async def test_back_pressure_stops_reading_at_the_in_flight_bound() -> None:
    source = ScriptedSource([batch("a", 1, 4), batch("a", 5, 4), batch("a", 9, 4)])
    sink = RecordingSink()
    sink.gate = asyncio.Event()
    config = PipelineConfig(checkpoint_interval=3600, max_in_flight_records=8)
    pipeline = Pipeline(source, sink, config=config)
    task = asyncio.create_task(pipeline.run())
    await sink.write_started.wait()
    # the first write is parked: the reader fills the bound (8 records) and must wait
    for _ in range(20):
        await asyncio.sleep(0)
    assert source.yielded == 3  # the third batch was pulled ...
    assert pipeline.stats.records_in == 12
    assert sink.writes == []
    in_flight_before_release = pipeline._in_flight
    assert in_flight_before_release <= 8  # ... but not admitted past the bound
    sink.gate.set()
    await task
    assert source.last_checkpoint("a") == 12


async def test_checkpoint_interval_checkpoints_while_running() -> None:
    source = ScriptedSource([batch("a", 1, 3)], endless=True)
    sink = RecordingSink()
    config = PipelineConfig(checkpoint_interval=0.01)
    pipeline = Pipeline(source, sink, config=config)
    task = asyncio.create_task(pipeline.run())
    deadline = asyncio.get_running_loop().time() + 10
    while source.last_checkpoint("a") != 3:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    assert not task.done()
    await pipeline.stop()
    await task


async def test_stop_drains_in_flight_writes_and_checkpoints() -> None:
    """RELIABILITY row 3 with doubles: what was read is written and checkpointed."""
    source = ScriptedSource([batch("a", 1, 5)], endless=True)
    sink = RecordingSink()
    sink.gate = asyncio.Event()
    pipeline = Pipeline(source, sink, config=FAST)
    task = asyncio.create_task(pipeline.run())
    await sink.write_started.wait()
    stop = asyncio.create_task(pipeline.stop())
    await stop
    assert not task.done()
    sink.gate.set()
    stats = await task
    assert stats.records_out == 5
    assert source.last_checkpoint("a") == 5


async def test_drain_timeout_abandons_stuck_writes_without_checkpointing_them() -> None:
    source = ScriptedSource([batch("a", 1, 2)], endless=True)
    sink = RecordingSink()
    sink.gate = asyncio.Event()  # never opened
    config = PipelineConfig(checkpoint_interval=3600, drain_timeout=0.05)
    pipeline = Pipeline(source, sink, config=config)
    task = asyncio.create_task(pipeline.run())
    await sink.write_started.wait()
    await pipeline.stop()
    await task
    assert source.last_checkpoint("a") is None


async def test_partition_concurrency_allows_parallel_writes_per_partition() -> None:
    source = ScriptedSource([batch("a", 1, 2), batch("a", 3, 2)])
    sink = RecordingSink()
    sink.gate = asyncio.Event()
    config = PipelineConfig(checkpoint_interval=3600, partition_concurrency=2)
    pipeline = Pipeline(source, sink, config=config)
    task = asyncio.create_task(pipeline.run())
    deadline = asyncio.get_running_loop().time() + 10
    while sink.attempts < 2:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0)
    sink.gate.set()
    await task
    assert source.last_checkpoint("a") == 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_in_flight_records": 0},
        {"partition_concurrency": 0},
        {"max_sink_batch_records": 0},
        {"checkpoint_interval": 0},
        {"sink_retry": 3},
        {"drain_timeout": -1},
    ],
)
def test_bad_config_is_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        PipelineConfig(**kwargs)  # type: ignore[arg-type]


async def test_run_until_signal_drains_and_returns_zero_on_sigterm() -> None:
    source = ScriptedSource([batch("a", 1, 3)], endless=True)
    sink = RecordingSink()
    pipeline = Pipeline(source, sink, config=FAST)
    task = asyncio.create_task(run_until_signal(pipeline))
    await source.all_yielded.wait()
    os.kill(os.getpid(), signal.SIGTERM)
    assert await task == 0
    assert source.last_checkpoint("a") == 3


async def test_run_until_signal_returns_one_on_sink_failure() -> None:
    source = ScriptedSource([batch("a", 1, 1)])
    sink = RecordingSink(lambda records: ValidationError("bad"))
    assert await run_until_signal(Pipeline(source, sink, config=FAST)) == 1


# --- outages versus poison records (RELIABILITY rows 15, 16, 21) ---------------------------------


class _Outage:
    """A sink failure switch: while ``down`` every write raises ``error``; counts the attempts."""

    def __init__(self, error: BaseException, *, notify_after: int) -> None:
        self.down = True
        self.error = error
        self.failed = 0
        self.notify_after = notify_after
        self.long_enough = asyncio.Event()

    def __call__(self, records: Sequence[ConsumedRecord]) -> BaseException | None:
        if not self.down:
            return None
        self.failed += 1
        if self.failed >= self.notify_after:
            self.long_enough.set()
        return self.error


@pytest.mark.parametrize(
    "error",
    [
        TransientServiceError("connection refused"),
        ThrottledError("slow down"),
    ],
    ids=["transient", "throttled"],
)
async def test_sink_outage_pauses_reading_and_dead_letters_nothing(error: BaseException) -> None:
    outage = _Outage(error, notify_after=200)
    source = ScriptedSource([batch("a", 1 + 4 * n, 4) for n in range(10)], endless=True)
    sink = RecordingSink(outage)
    dead_letter = RecordingDeadLetter()
    config = PipelineConfig(checkpoint_interval=3600, max_in_flight_records=8, sink_retry=NO_WAIT)
    pipeline = Pipeline(source, sink, config=config, dead_letter=dead_letter)
    task = asyncio.create_task(pipeline.run())
    await asyncio.wait_for(outage.long_enough.wait(), 30)  # 200 failed writes: more than any bounded retry
    assert dead_letter.entries == []
    assert sink.writes == []
    assert pipeline._in_flight <= 8  # reading paused at the bound instead of buffering
    assert source.yielded <= 3
    assert not task.done()
    outage.down = False
    await source.all_yielded.wait()
    await pipeline.stop()
    stats = await task
    written = [record for write in sink.writes for record in write]
    assert _sequences(written) == list(range(1, 41))  # all of them, once, in order
    assert dead_letter.entries == []
    assert stats.dead_lettered == 0
    assert stats.retries >= 200
    assert source.last_checkpoint("a") == 40


async def test_a_bounded_sink_retry_stops_the_run_without_dead_lettering() -> None:
    source = ScriptedSource([batch("a", 1, 2), batch("a", 3, 2)])
    sink = RecordingSink(lambda records: TransientServiceError("down") if 3 in _sequences(records) else None)
    dead_letter = RecordingDeadLetter()
    bounded = RetryPolicy(max_attempts=4, deadline=None, initial_backoff=0.0, max_backoff=0.0)
    config = PipelineConfig(checkpoint_interval=3600, sink_retry=bounded)
    with pytest.raises(SinkError) as raised:
        await Pipeline(source, sink, config=config, dead_letter=dead_letter).run()
    assert isinstance(raised.value.__cause__, TransientServiceError)
    assert sink.attempts == 1 + 4  # the first batch, then four tries of the second
    assert dead_letter.entries == []
    assert source.last_checkpoint("a") == 2


async def test_errors_outside_the_tree_are_treated_as_poison_at_once() -> None:
    def fail(records: Sequence[ConsumedRecord]) -> BaseException | None:
        return RuntimeError("sink bug on this record") if 2 in _sequences(records) else None

    source = ScriptedSource([batch("a", 1, 2)])
    sink = RecordingSink(fail)
    dead_letter = RecordingDeadLetter()
    stats = await Pipeline(source, sink, config=FAST, dead_letter=dead_letter).run()
    assert sink.attempts == 3  # [1, 2] fails, then [1] and [2] alone: no retry of a rejection
    assert stats.retries == 0
    assert [entry.error_type for entry in dead_letter.entries] == ["RuntimeError"]


async def test_failure_part_way_through_a_batch_checkpoints_up_to_the_failed_record() -> None:
    def fail(records: Sequence[ConsumedRecord]) -> BaseException | None:
        return ValidationError("bad") if 6 in _sequences(records) else None

    source = ScriptedSource([batch("a", 1, 3), batch("a", 4, 5)])
    sink = RecordingSink(fail)
    with pytest.raises(SinkError):
        await Pipeline(source, sink, config=FAST).run()
    assert sorted(_sequences(list(sink.written.values()))) == [1, 2, 3, 4, 5]
    assert source.last_checkpoint("a") == 5  # resumes at 6, not at the batch's first record


async def test_run_closes_the_source_after_the_last_checkpoint() -> None:
    source = ScriptedSource([batch("a", 1, 2)])
    await Pipeline(source, RecordingSink(), config=FAST).run()
    assert source.close_calls == 1
    assert source.last_checkpoint("a") == 2


async def test_run_closes_the_source_when_the_sink_fails_too() -> None:
    source = ScriptedSource([batch("a", 1, 1)])
    with pytest.raises(SinkError):
        await Pipeline(source, RecordingSink(lambda records: ValidationError("bad")), config=FAST).run()
    assert source.close_calls == 1
