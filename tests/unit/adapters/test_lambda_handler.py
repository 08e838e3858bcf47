"""The Lambda handler with events shaped exactly as a Kinesis event-source mapping sends them."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator

from consumers.adapters.lambda_handler import make_handler, parse_kinesis_event
from consumers.pipeline import PipelineConfig
from consumers.sinks.base import DeadLetterEntry
from consumers.sinks.deadletter import FileDeadLetter
from consumers.sinks.file import FileSink
from shardline.errors import ClosedError, SinkError, TransientServiceError, ValidationError
from shardline.records import ConsumedRecord, KinesisPosition
from shardline.retry import RetryPolicy

ARN = "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream"
SEQUENCES = [
    "49590338271490256608559692538361571095921575989136588898",
    "49590338271490256608559692540925702759324208523137515618",
    "49590338271490256608559692540925702759324208523137515619",
    "49590338271490256608559692540925702759324208523137515620",
]


def _event_record(
    sequence: str, data: bytes, key: str = "1", shard: str = "shardId-000000000006"
) -> dict[str, Any]:
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": key,
            "sequenceNumber": sequence,
            "data": base64.b64encode(data).decode("ascii"),
            "approximateArrivalTimestamp": 1545084650.987,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
        "awsRegion": "us-east-2",
        "eventSourceARN": ARN,
    }


def _event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


class Sink:
    def __init__(self, poison: set[bytes] | None = None) -> None:
        self.written: list[ConsumedRecord] = []
        self.poison = poison or set()

    async def write(self, batch: Sequence[ConsumedRecord]) -> None:
        if any(record.data in self.poison for record in batch):
            raise ValidationError("rejected")
        self.written.extend(batch)

    async def close(self) -> None:
        return None


class DeadLetter:
    def __init__(self) -> None:
        self.entries: list[DeadLetterEntry] = []

    async def put(self, entries: Sequence[DeadLetterEntry]) -> None:
        self.entries.extend(entries)

    async def close(self) -> None:
        return None


def test_all_written_returns_empty_failures_and_keeps_identity() -> None:
    sink = Sink()
    handler = make_handler(sink)
    event = _event(*(_event_record(seq, f"r{i}".encode()) for i, seq in enumerate(SEQUENCES)))
    assert handler(event, None) == {"batchItemFailures": []}
    assert [r.data for r in sink.written] == [b"r0", b"r1", b"r2", b"r3"]
    first = sink.written[0]
    assert first.position == KinesisPosition("lambda-stream", "shardId-000000000006", SEQUENCES[0])
    assert first.arrival_time is not None
    assert first.arrival_time.timestamp() == pytest.approx(1545084650.987)


def test_unwritable_record_reports_every_record_not_written() -> None:
    """The shard stops at the poison record: it and everything after it are reported (Lambda
    resumes at the lowest; listing the rest too keeps the answer right per record)."""
    sink = Sink(poison={b"r2"})
    handler = make_handler(sink, config=PipelineConfig(max_sink_batch_records=1))
    event = _event(*(_event_record(seq, f"r{i}".encode()) for i, seq in enumerate(SEQUENCES)))
    assert handler(event, None) == {
        "batchItemFailures": [{"itemIdentifier": SEQUENCES[2]}, {"itemIdentifier": SEQUENCES[3]}]
    }
    assert [r.data for r in sink.written] == [b"r0", b"r1"]


@pytest.mark.parametrize("sink_batch", [2, 4, 500])
def test_failure_reports_the_first_failed_record_not_the_start_of_its_sink_batch(sink_batch: int) -> None:
    """Without a dead letter, the sink rejects r3 inside a batch: the batch is bisected, r2 is
    written, and Lambda is told to resume at r3 itself (not at the batch's first record)."""
    sink = Sink(poison={b"r3"})
    handler = make_handler(sink, config=PipelineConfig(max_sink_batch_records=sink_batch))
    event = _event(*(_event_record(seq, f"r{i}".encode()) for i, seq in enumerate(SEQUENCES)))
    assert handler(event, None) == {"batchItemFailures": [{"itemIdentifier": SEQUENCES[3]}]}
    assert [r.data for r in sink.written] == [b"r0", b"r1", b"r2"]


def test_sink_outage_is_reported_at_the_first_unwritten_record_and_nothing_dead_lettered() -> None:
    """A retriable failure is never a poison record: after the adapter's bounded wait the
    batch fails from the first record not written, for Lambda to retry later."""

    class Down(Sink):
        async def write(self, batch: Sequence[ConsumedRecord]) -> None:
            if any(record.data == b"r2" for record in batch):
                raise TransientServiceError("connection refused")
            await super().write(batch)

    sink, dead_letter = Down(), DeadLetter()
    no_wait = RetryPolicy(max_attempts=3, deadline=None, initial_backoff=0.0, max_backoff=0.0)
    handler = make_handler(
        sink, dead_letter=dead_letter, config=PipelineConfig(max_sink_batch_records=2, sink_retry=no_wait)
    )
    event = _event(*(_event_record(seq, f"r{i}".encode()) for i, seq in enumerate(SEQUENCES)))
    assert handler(event, None) == {
        "batchItemFailures": [{"itemIdentifier": SEQUENCES[2]}, {"itemIdentifier": SEQUENCES[3]}]
    }
    assert dead_letter.entries == []


def test_poison_record_with_dead_letter_is_not_reported() -> None:
    sink = Sink(poison={b"r1"})
    dead_letter = DeadLetter()
    handler = make_handler(sink, dead_letter=dead_letter)
    event = _event(*(_event_record(seq, f"r{i}".encode()) for i, seq in enumerate(SEQUENCES)))
    assert handler(event, None) == {"batchItemFailures": []}
    assert [entry.record.data for entry in dead_letter.entries] == [b"r1"]
    assert [r.data for r in sink.written if r.data != b"r1"] == [b"r0", b"r2", b"r3"]


def test_kpl_aggregates_are_expanded_with_sub_sequence_numbers() -> None:
    aggregator = RecordAggregator()
    for index in range(3):
        assert aggregator.add_user_record(f"device-{index}", f"u{index}".encode()) is None
    _, _, aggregated = aggregator.clear_and_get().get_contents()
    sink = Sink()
    handler = make_handler(sink)
    assert handler(_event(_event_record(SEQUENCES[0], aggregated)), None) == {"batchItemFailures": []}
    assert [(r.data, r.partition_key) for r in sink.written] == [
        (b"u0", "device-0"),
        (b"u1", "device-1"),
        (b"u2", "device-2"),
    ]
    assert [r.position.sub_sequence_number for r in sink.written] == [0, 1, 2]  # type: ignore[union-attr]


def test_failure_inside_an_aggregate_reports_the_aggregate() -> None:
    aggregator = RecordAggregator()
    for index in range(3):
        aggregator.add_user_record("k", f"u{index}".encode())
    _, _, aggregated = aggregator.clear_and_get().get_contents()
    handler = make_handler(Sink(poison={b"u1"}), config=PipelineConfig(max_sink_batch_records=1))
    event = _event(_event_record(SEQUENCES[0], b"plain"), _event_record(SEQUENCES[1], aggregated))
    assert handler(event, None) == {"batchItemFailures": [{"itemIdentifier": SEQUENCES[1]}]}


def test_transform_runs_and_can_drop() -> None:
    def transform(record: ConsumedRecord) -> ConsumedRecord | None:
        return None if record.data == b"r0" else record

    sink = Sink()
    handler = make_handler(sink, transform=transform)
    handler(_event(_event_record(SEQUENCES[0], b"r0"), _event_record(SEQUENCES[1], b"r1")), None)
    assert [r.data for r in sink.written] == [b"r1"]


@pytest.mark.parametrize("garbage", ["text", {"data": b"r1"}, b"r1", 42])
def test_a_transform_returning_no_record_dead_letters_it_and_the_shard_moves_on(
    tmp_path: Path, garbage: object
) -> None:
    """Handed to the sink, what the transform returned failed the write, was bisected down to,
    and could not be dead-lettered either (the entry held no record): every retry of the batch
    stopped at that record and the records after it were never written."""
    sink = FileSink(tmp_path / "out.jsonl")
    dead_letter = FileDeadLetter(tmp_path / "dead.jsonl")

    def transform(record: ConsumedRecord) -> Any:
        return garbage if record.data == b"r1" else record

    handler = make_handler(sink, transform=transform, dead_letter=dead_letter)
    event = _event(*(_event_record(seq, f"r{i}".encode()) for i, seq in enumerate(SEQUENCES)))
    try:
        assert handler(event, None) == {"batchItemFailures": []}
    finally:
        handler.close()
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [base64.b64decode(line["data"]) for line in written] == [b"r0", b"r2", b"r3"]
    (dead,) = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert (dead["position"]["sequence_number"], dead["error_type"], dead["destination"]) == (
        SEQUENCES[1],
        "TypeError",
        "transform",
    )


@pytest.mark.parametrize("answer", [True, 1, [True], [{"outcome": "written"}], ["ok"]])
def test_a_sink_answering_garbage_is_a_sink_error_not_a_crash(answer: Any) -> None:
    """A sink breaking its contract (``return True``) fails the records it was given with a
    SinkError, and the ones before it stay written; a TypeError or AttributeError from deep
    in the write failed the whole invocation untyped."""

    class Garbage(Sink):
        async def write(self, batch: Sequence[ConsumedRecord]) -> Any:
            if any(record.data == b"r2" for record in batch):
                return answer
            self.written.extend(batch)
            return None

    sink = Garbage()
    event = _event(*(_event_record(seq, f"r{i}".encode()) for i, seq in enumerate(SEQUENCES)))
    handler = make_handler(sink, config=PipelineConfig(max_sink_batch_records=1))
    strict = make_handler(
        Garbage(), config=PipelineConfig(max_sink_batch_records=1), partial_batch_response=False
    )
    try:
        assert handler(event, None) == {
            "batchItemFailures": [{"itemIdentifier": SEQUENCES[2]}, {"itemIdentifier": SEQUENCES[3]}]
        }
        assert [record.data for record in sink.written] == [b"r0", b"r1"]
        with pytest.raises(SinkError, match="Garbage sink returned"):
            strict(event, None)
    finally:
        handler.close()
        strict.close()


def test_handler_survives_several_invocations() -> None:
    sink = Sink()
    handler = make_handler(sink)
    for seq in SEQUENCES[:2]:
        assert handler(_event(_event_record(seq, b"x")), None) == {"batchItemFailures": []}
    assert len(sink.written) == 2


def test_empty_event() -> None:
    assert make_handler(Sink())({"Records": []}, None) == {"batchItemFailures": []}


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.update(eventSource="aws:sqs"),
        lambda r: r["kinesis"].update(data="not base64!!"),
        lambda r: r["kinesis"].pop("sequenceNumber"),
        lambda r: r["kinesis"].update(sequenceNumber="9" * 5000),  # past int()'s digit limit
        lambda r: r.update(eventSourceARN="arn:aws:sqs:us-east-2:123456789012:queue"),
    ],
)
def test_malformed_events_are_rejected_before_writing(mutate: Any) -> None:
    sink = Sink()
    record = _event_record(SEQUENCES[0], b"r0")
    mutate(record)
    with pytest.raises(ValidationError):
        make_handler(sink)(_event(_event_record(SEQUENCES[1], b"ok"), record), None)
    assert sink.written == []


def test_records_of_two_streams_are_refused_not_taken_for_one_record() -> None:
    """A mapping reads one stream; a bare sequence number cannot say which stream a listed
    record is of.  Two streams' records with one shard id and sequence number were taken for
    a repeated record: only the first was written and the other was answered as done."""
    sink = Sink()
    other = _event_record(SEQUENCES[0], b"other stream")
    other["eventSourceARN"] = "arn:aws:kinesis:us-east-2:123456789012:stream/other-stream"
    handler = make_handler(sink)
    try:
        with pytest.raises(ValidationError, match="more than one stream"):
            handler(_event(_event_record(SEQUENCES[0], b"lambda-stream"), other), None)
    finally:
        handler.close()
    assert sink.written == []


def test_parse_rejects_non_events() -> None:
    with pytest.raises(ValidationError):
        parse_kinesis_event({"Records": "nope"})


class ClosingSink(Sink):
    """Notes the thread its close ran on: the handler's loop thread, where its client lives."""

    def __init__(self) -> None:
        super().__init__()
        self.closed_on: list[str] = []

    async def close(self) -> None:
        self.closed_on.append(threading.current_thread().name)


class ClosingDeadLetter(DeadLetter):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


def test_close_closes_the_sink_on_the_handlers_loop_and_ends_its_thread() -> None:
    sink, dead_letter = ClosingSink(), ClosingDeadLetter()
    handler = make_handler(sink, dead_letter=dead_letter)
    before = set(threading.enumerate())
    assert handler(_event(_event_record(SEQUENCES[0], b"r0")), None) == {"batchItemFailures": []}
    loop_threads = [t for t in set(threading.enumerate()) - before if t.name == "shardline-lambda-loop"]
    handler.close(timeout=5)
    # before: no close at all; the sink's connections and the loop's thread stayed open
    assert sink.closed_on == ["shardline-lambda-loop"] and dead_letter.closed == 1
    assert loop_threads and not any(t.is_alive() for t in loop_threads)
    with pytest.raises(ClosedError):
        handler(_event(_event_record(SEQUENCES[1], b"r1")), None)
    handler.close(timeout=5)  # a second close does nothing
    assert sink.closed_on == ["shardline-lambda-loop"] and dead_letter.closed == 1


def test_a_handler_never_invoked_closes_its_sink_too() -> None:
    sink = ClosingSink()
    make_handler(sink).close(timeout=5)
    assert len(sink.closed_on) == 1


class LeavesATaskBehind(Sink):
    """Each write starts a task that outlives the invocation (as a batch given up at its
    deadline leaves its writes running)."""

    def __init__(self) -> None:
        super().__init__()
        self.left: list[asyncio.Task[None]] = []

    async def write(self, batch: Sequence[ConsumedRecord]) -> None:
        self.left.append(asyncio.get_running_loop().create_task(asyncio.Event().wait()))
        await super().write(batch)


def test_close_cancels_what_the_invocations_left_running_on_the_loop() -> None:
    sink = LeavesATaskBehind()
    handler = make_handler(sink)
    assert handler(_event(_event_record(SEQUENCES[0], b"r0")), None) == {"batchItemFailures": []}
    handler.close(timeout=5)
    # before: left pending on the closed loop, destroyed whenever the collector ran
    assert sink.left and all(task.cancelled() for task in sink.left)
