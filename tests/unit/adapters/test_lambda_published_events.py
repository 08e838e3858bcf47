"""The Lambda handler against the published sample events (tests/fixtures/lambda, origin in its
README) and against events no sample covers: records out of order, repeated records, KPL
aggregates built by aws-kinesis-agg, a Kafka batch with a failing record, the time bound."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator

from consumers.adapters.lambda_handler import _LoopThread, make_handler, parse_event
from consumers.pipeline import PipelineConfig
from consumers.sinks.base import DeadLetterEntry
from shardline.errors import BackgroundTaskError, ConfigurationError, SinkError, ValidationError
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "lambda"
KINESIS_SAMPLES = [
    "powertools-kinesisStreamEvent.json",
    "powertools-kinesisStreamEventOneRecord.json",
    "powertools-kinesisStreamCloudWatchLogsEvent.json",
    "aws-lambda-go-kinesis-event.json",
    "aws-lambda-go-kinesis-time-window-event.json",
    "powertools-example-kinesis-event.json",
]
KAFKA_SAMPLES = [
    "powertools-kafkaEventMsk.json",
    "powertools-kafkaEventSelfManaged.json",
    "aws-lambda-go-kafka-event.json",
    "powertools-example-kafka-event.json",
]


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


class Sink:
    """Writes everything except what ``reject`` says no to (a non-retriable rejection)."""

    def __init__(self, reject: Any = None) -> None:
        self.written: list[ConsumedRecord] = []
        self.reject = reject or (lambda record: False)

    async def write(self, batch: Sequence[ConsumedRecord]) -> None:
        if any(self.reject(record) for record in batch):
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


def _not_json(record: ConsumedRecord) -> bool:
    try:
        json.loads(record.data)
    except ValueError:
        return True
    return False


def _identifiers(event: dict[str, Any]) -> list[Any]:
    if "Records" in event:
        return [{"itemIdentifier": r["kinesis"]["sequenceNumber"]} for r in event["Records"]]
    return [
        {"itemIdentifier": {"topic-partition": f"{r['topic']}-{r['partition']}", "offset": r["offset"]}}
        for group in event["records"].values()
        for r in group
    ]


@pytest.mark.parametrize("name", KINESIS_SAMPLES + KAFKA_SAMPLES)
def test_every_published_event_written_whole_is_a_complete_success(name: str) -> None:
    event = _load(name)
    sink = Sink()
    response = make_handler(sink)(event, None)
    expected: dict[str, Any] = {"batchItemFailures": []}
    if "window" in event:
        expected["state"] = event["state"]  # a tumbling-window answer carries the state on
    assert response == expected
    assert len({record.position for record in sink.written}) == len(_identifiers(event))
    assert all(
        record.arrival_time is not None and record.arrival_time.tzinfo is UTC for record in sink.written
    )


@pytest.mark.parametrize("name", KINESIS_SAMPLES + KAFKA_SAMPLES)
def test_every_published_event_failing_whole_lists_every_record_as_aws_documents(name: str) -> None:
    event = _load(name)
    response = make_handler(Sink(reject=lambda record: True))(event, None)
    assert response["batchItemFailures"] == _identifiers(event)


def test_the_published_kinesis_example_gives_the_published_response() -> None:
    """powertools' getting-started pair: the second record is not JSON."""
    response = make_handler(Sink(reject=_not_json))(_load("powertools-example-kinesis-event.json"), None)
    assert response == _load("powertools-example-kinesis-response.json")


def test_the_published_kafka_example_lists_the_published_failure_first() -> None:
    """powertools' getting-started pair: offset 1 fails.  Without a dead letter Shardline stops
    the partition at it, so offset 2 (not written either) is listed as well; with a dead
    letter the batch is a complete success."""
    event = _load("powertools-example-kafka-event.json")
    published = _load("powertools-example-kafka-response.json")["batchItemFailures"]
    failing = lambda record: b"Failure" in record.data  # noqa: E731
    sink = Sink(reject=failing)
    response = make_handler(sink, config=PipelineConfig(max_sink_batch_records=1))(event, None)
    assert response["batchItemFailures"] == [
        *published,
        {"itemIdentifier": {"topic-partition": "mytopic-0", "offset": 2}},
    ]
    assert [record.position for record in sink.written] == [KafkaPosition("mytopic", 0, 0)]

    dead_letter = DeadLetter()
    assert make_handler(Sink(reject=failing), dead_letter=dead_letter)(event, None) == {
        "batchItemFailures": []
    }
    assert [entry.record.position for entry in dead_letter.entries] == [KafkaPosition("mytopic", 0, 1)]


def test_kafka_records_carry_key_headers_and_time() -> None:
    [item] = parse_event(_load("aws-lambda-go-kafka-event.json"))
    [record] = item.records
    assert record.position == KafkaPosition("AWSKafkaTopic", 0, 0)
    assert record.partition_key == "8d5596b4-1813-4238-b24b-6dad8e3d1c0c"
    assert record.headers == {"headerKey": bytes([118, 220, 0, 127, 128])}  # signed Java bytes
    assert record.arrival_time == datetime.fromtimestamp(1595035749.7, tz=UTC)
    [msk] = parse_event(_load("powertools-kafkaEventMsk.json"))
    assert msk.identifier == {"topic-partition": "mytopic-0", "offset": 15}
    assert msk.records[0].headers == {"headerKey": b"headerValue"}


def test_a_kafka_header_with_a_null_value_reads_as_empty_bytes_as_kafka_source_reads_it() -> None:
    """A null header value is legal in Kafka; as a malformed event it failed every retry."""
    event = _load("powertools-kafkaEventMsk.json")
    [raw] = next(iter(event["records"].values()))
    raw["headers"] = [{"present": [104, 105]}, {"nullValued": None}]
    [item] = parse_event(event)
    assert item.records[0].headers == {"present": b"hi", "nullValued": b""}


def _kinesis_record(sequence: str, data: bytes, shard: str = "shardId-000000000006") -> dict[str, Any]:
    record = copy.deepcopy(_load("powertools-kinesisStreamEvent.json")["Records"][0])
    record["kinesis"]["sequenceNumber"] = sequence
    record["kinesis"]["data"] = base64.b64encode(data).decode("ascii")
    record["eventID"] = f"{shard}:{sequence}"
    return record


SEQ = [f"4959033827149025660855969253836157109592157598913658{n:04d}" for n in range(6)]


def test_records_out_of_order_are_mapped_per_record() -> None:
    """A replayed/synthetic event lists the shard's records in reverse.  Without a dead letter
    r2 is rejected: r0 and r1 are written, and exactly r2..r5 are reported, whatever the order
    they came in (a watermark over event order would have reported r5 and called r0..r4 done)."""
    records = [_kinesis_record(SEQ[n], f"r{n}".encode()) for n in range(6)]
    event = {"Records": list(reversed(records))}
    sink = Sink(reject=lambda record: record.data == b"r2")
    response = make_handler(sink, config=PipelineConfig(max_sink_batch_records=1))(event, None)
    assert sorted(item["itemIdentifier"] for item in response["batchItemFailures"]) == SEQ[2:]
    assert [record.data for record in sink.written] == [b"r0", b"r1"]
    reported = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    written = {record.position.sequence_number for record in sink.written}  # type: ignore[union-attr]
    assert reported | written == set(SEQ) and not reported & written


def test_two_shards_interleaved_are_mapped_per_shard() -> None:
    a = [_kinesis_record(SEQ[n], f"a{n}".encode(), "shardId-000000000001") for n in range(3)]
    b = [_kinesis_record(SEQ[n + 3], f"b{n}".encode(), "shardId-000000000002") for n in range(3)]
    event = {"Records": [b[2], a[1], b[0], a[2], a[0], b[1]]}
    sink = Sink(reject=lambda record: record.data == b"b1")
    response = make_handler(sink, config=PipelineConfig(max_sink_batch_records=1))(event, None)
    reported = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    written = {record.position.sequence_number for record in sink.written}  # type: ignore[union-attr]
    # shard 2 is exact: b0 written, b1 (rejected) and b2 (after it) reported
    assert (SEQ[3] in written, SEQ[3] in reported) == (True, False)
    assert {SEQ[4], SEQ[5]} <= reported and not {SEQ[4], SEQ[5]} & written
    # the failure stops the whole invocation: shard 1 may be cut short, but a record is
    # reported unless it was written, never the other way round
    assert set(SEQ) - written <= reported


def test_a_record_repeated_in_the_event_is_written_once() -> None:
    kinesis = {
        "Records": [
            _kinesis_record(SEQ[0], b"x"),
            _kinesis_record(SEQ[1], b"y"),
            _kinesis_record(SEQ[0], b"x"),
        ]
    }
    sink = Sink()
    assert make_handler(sink)(kinesis, None) == {"batchItemFailures": []}
    assert [record.data for record in sink.written] == [b"x", b"y"]

    kafka = _load("powertools-kafkaEventMsk.json")
    kafka["records"]["mytopic-0"] = kafka["records"]["mytopic-0"] * 3
    sink = Sink()
    assert make_handler(sink)(kafka, None) == {"batchItemFailures": []}
    assert [record.position for record in sink.written] == [KafkaPosition("mytopic", 0, 15)]
    failing = make_handler(Sink(reject=lambda record: True))(kafka, None)
    assert failing == {
        "batchItemFailures": [{"itemIdentifier": {"topic-partition": "mytopic-0", "offset": 15}}]
    }


def _aggregate(*payloads: bytes) -> bytes:
    aggregator = RecordAggregator()
    for index, payload in enumerate(payloads):
        assert aggregator.add_user_record(f"k{index}", payload) is None
    return bytes(aggregator.clear_and_get().get_contents()[2])


def test_kpl_aggregates_out_of_order_report_the_aggregate_that_was_not_written() -> None:
    event = {
        "Records": [
            _kinesis_record(SEQ[2], _aggregate(b"c0", b"c1")),
            _kinesis_record(SEQ[0], _aggregate(b"a0", b"a1", b"a2")),
            _kinesis_record(SEQ[1], _aggregate(b"b0", b"b1")),
        ]
    }
    sink = Sink(reject=lambda record: record.data == b"b1")
    response = make_handler(sink, config=PipelineConfig(max_sink_batch_records=2))(event, None)
    assert response == {"batchItemFailures": [{"itemIdentifier": SEQ[2]}, {"itemIdentifier": SEQ[1]}]}
    assert [record.data for record in sink.written] == [b"a0", b"a1", b"a2", b"b0"]
    assert [record.position for record in sink.written][-1] == KinesisPosition(
        "lambda-stream", "shardId-000000000006", SEQ[1], 0
    )


class _Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_the_write_is_bounded_by_the_invocations_remaining_time() -> None:
    """A sink that never answers: the handler answers before Lambda's timeout, every record
    reported for retry."""

    class Hanging(Sink):
        async def write(self, batch: Sequence[ConsumedRecord]) -> None:
            await asyncio.Event().wait()

    event = _load("powertools-kinesisStreamEvent.json")
    handler = make_handler(Hanging(), time_margin=0.0)
    response = handler(event, _Context(remaining_ms=300))
    assert response["batchItemFailures"] == _identifiers(event)
    # the handler's loop survives for the next invocation
    assert make_handler(Sink())(event, _Context(remaining_ms=60_000)) == {"batchItemFailures": []}
    assert handler(event, _Context(remaining_ms=300))["batchItemFailures"] == _identifiers(event)


@pytest.mark.timeout(30)
def test_a_transform_that_never_answers_is_bounded_and_what_was_written_is_not_listed() -> None:
    """An async transform awaiting a lookup that never answers is bounded by the deadline like
    a sink call: the handler answers with the record it stopped at and the later ones.  It
    ran on until the handler's last resort, which lists every record of the event: the ones
    already written too, so each retry wrote them again and stopped at the same record."""
    stuck = asyncio.Event()  # never set

    async def transform(record: ConsumedRecord) -> ConsumedRecord:
        if record.data == b"r2":
            await stuck.wait()
        return record

    sink = Sink()
    event = {"Records": [_kinesis_record(SEQ[index], f"r{index}".encode()) for index in range(4)]}
    handler = make_handler(
        sink, transform=transform, config=PipelineConfig(max_sink_batch_records=1), time_margin=3.0
    )
    try:
        # 2 s to write, and 1.5 s past that deadline before the last resort would answer
        response = handler(event, _Context(remaining_ms=5_000))
        assert response == {"batchItemFailures": [{"itemIdentifier": SEQ[2]}, {"itemIdentifier": SEQ[3]}]}
        assert [record.data for record in sink.written] == [b"r0", b"r1"]
    finally:
        handler.close()


@pytest.mark.parametrize(
    "event",
    [
        {"eventSource": "aws:kafka", "records": []},
        {"eventSource": "aws:kafka", "records": {"t-0": [{"topic": "t", "partition": 0}]}},
        {"eventSource": "aws:kafka", "records": {"t-0": [{"topic": "t", "partition": 0, "offset": -1}]}},
        {
            "eventSource": "aws:kafka",
            "records": {"t-0": [{"topic": "t", "partition": 0, "offset": 1, "value": "!"}]},
        },
        {"eventSource": "aws:sqs", "Records": []},
        {  # a header byte no Java byte can be: it was wrapped into one
            "eventSource": "aws:kafka",
            "records": {"t-0": [{"topic": "t", "partition": 0, "offset": 1, "headers": [{"h": [300]}]}]},
        },
    ],
)
def test_malformed_kafka_events_are_rejected_before_writing(event: dict[str, Any]) -> None:
    sink = Sink()
    with pytest.raises(ValidationError):
        make_handler(sink)(event, None)
    assert sink.written == []


def test_a_kafka_timestamp_past_the_year_9999_keeps_the_record_without_an_arrival() -> None:
    """A producer chooses CreateTime; one a datetime cannot hold must not fail the event."""
    event = _load("powertools-kafkaEventMsk.json")
    first = next(iter(event["records"].values()))[0]
    first["timestamp"] = 253_402_300_800_000
    records = [record for item in parse_event(event) for record in item.records]
    assert records[0].arrival_time is None
    assert records[0].data == base64.b64decode(first["value"])


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda event: event.update(eventSource=["aws:kafka"]), "unsupported eventSource"),
        (lambda event: event.update(eventSource={"a": 1}), "unsupported eventSource"),
        (
            lambda event: event["Records"][0]["kinesis"].update(approximateArrivalTimestamp=1e300),
            "malformed Kinesis event record: OverflowError",
        ),
    ],
)
def test_malformed_events_found_by_mutating_the_samples_are_validation_errors(edit: Any, says: str) -> None:
    """Each raised TypeError (an unhashable eventSource) or OverflowError before."""
    event = _load("powertools-kinesisStreamEvent.json")
    edit(event)
    with pytest.raises(ValidationError, match=says):
        parse_event(event)


@pytest.mark.parametrize(
    "edit",
    [
        lambda event: event.pop("state"),
        lambda event: event.update(state=None),
        lambda event: event.update(Records=[], isFinalInvokeForWindow=True),
        lambda event: event.update(isWindowTerminatedEarly=True),
    ],
    ids=["no-state", "null-state", "final-invoke-without-records", "terminated-early"],
)
def test_a_tumbling_window_answer_always_carries_a_state_object(edit: Any) -> None:
    """Lambda counts a tumbling-window answer without a ``state`` property as a failed
    invocation (the whole batch retried, again and again): the state goes back as it came,
    and an absent or null one as an empty object."""
    event = _load("aws-lambda-go-kinesis-time-window-event.json")
    edit(event)
    response = make_handler(Sink())(event, None)
    state = event.get("state")
    assert response == {"state": state if state is not None else {}, "batchItemFailures": []}


def test_a_function_with_lambdas_default_three_second_timeout_writes_its_records() -> None:
    """Lambda's default timeout is 3 s, less than the default 5 s margin: the handler wrote
    nothing and listed every record, on every retry, until the records were given up."""
    event = _load("powertools-kinesisStreamEvent.json")
    sink = Sink()
    assert make_handler(sink)(event, _Context(remaining_ms=3_000)) == {"batchItemFailures": []}
    assert len(sink.written) == len(_identifiers(event))


def test_a_margin_that_leaves_no_time_to_write_is_refused_as_configuration() -> None:
    """A margin chosen at or above the function's timeout would fail every batch without a
    write; the invocation fails naming both numbers instead."""
    event = _load("powertools-kinesisStreamEvent.json")
    sink = Sink()
    with pytest.raises(ConfigurationError, match=r"time_margin=10"):
        make_handler(sink, time_margin=10.0)(event, _Context(remaining_ms=3_000))
    assert not sink.written


@pytest.mark.parametrize(
    "name", ["powertools-example-kafka-event.json", "powertools-kinesisStreamEvent.json"]
)
def test_without_partial_batch_responses_a_partial_failure_fails_the_invocation(name: str) -> None:
    """A Kafka mapping in on-demand mode (partial batch responses need provisioned pollers), or
    a mapping without ReportBatchItemFailures, ignores ``batchItemFailures`` and counts the
    batch done: a listed record would be lost.  Such a handler raises instead, and Lambda
    retries the whole batch (the idempotent sink absorbs what was written)."""
    event = _load(name)
    first = _identifiers(event)[-1]["itemIdentifier"]

    def last_record(record: ConsumedRecord) -> bool:
        position = record.position
        if isinstance(position, KafkaPosition):
            return position.offset == first["offset"]
        return isinstance(position, KinesisPosition) and position.sequence_number == first

    sink = Sink(reject=last_record)
    handler = make_handler(sink, partial_batch_response=False)
    with pytest.raises(SinkError):
        handler(event, None)
    assert sink.written  # what came before the failure was written all the same
    assert make_handler(Sink(), partial_batch_response=False)(event, None) == {"batchItemFailures": []}


def test_without_partial_batch_responses_a_write_past_the_deadline_fails_the_invocation() -> None:
    class Hanging(Sink):
        async def write(self, batch: Sequence[ConsumedRecord]) -> None:
            await asyncio.Event().wait()

    handler = make_handler(Hanging(), time_margin=0.0, partial_batch_response=False)
    with pytest.raises(SinkError):
        handler(_load("powertools-kafkaEventMsk.json"), _Context(remaining_ms=300))


@pytest.mark.timeout(30)
def test_a_sink_blocking_the_event_loop_is_answered_before_the_timeout() -> None:
    """A sink calling a blocking client inside ``async def`` holds the event loop, so no
    cancellation reaches it: the handler waits for the loop from another thread and answers
    with every record at the hard bound, before Lambda kills the invocation."""
    release = threading.Event()

    class Blocking(Sink):
        async def write(self, batch: Sequence[ConsumedRecord]) -> None:
            release.wait(timeout=20)

    event = _load("powertools-kinesisStreamEvent.json")
    handler = make_handler(Blocking(), time_margin=0.2)
    started = time.monotonic()
    response = handler(event, _Context(remaining_ms=500))
    answered = time.monotonic() - started
    release.set()
    assert response["batchItemFailures"] == _identifiers(event)
    assert answered < 10  # the 0.3 s budget and half the margin (bounded loosely), not the sink's 20 s


@pytest.mark.timeout(30)
def test_a_dead_event_loop_thread_is_raised_not_waited_for() -> None:
    """Should the handler's loop thread end (a ``SystemExit`` raised in a callback stops
    ``run_forever``), each batch after it would wait for a loop that no longer runs (for ever
    without a Lambda context).  The handler owns the thread: its death is raised, with the
    cause, now and for every later batch."""

    def broken_loop() -> None:
        raise RuntimeError("the loop broke")

    async def batch() -> Any:
        return None

    runner = _LoopThread()
    runner.loop.run_forever = broken_loop  # type: ignore[method-assign]
    first_batch, second_batch = batch(), batch()
    try:
        future = runner.submit(first_batch)
        with pytest.raises(BackgroundTaskError, match="event loop thread ended") as first:
            runner.wait(future, None)  # no deadline: only the thread's death ends the wait
        assert isinstance(first.value.__cause__, RuntimeError)
        with pytest.raises(BackgroundTaskError):
            runner.submit(second_batch)
    finally:
        first_batch.close()  # never run by the dead loop
        second_batch.close()
        runner.loop.close()
