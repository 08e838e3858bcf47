"""One contract suite run against every sink.

The contract: ``write`` tries every record once (chunked to the API's limits) and reports
one outcome per record; it never sleeps, resends or dead-letters.  The same harnesses then
drive the pipeline's write workflow (:class:`consumers._pipeline_write.WriteWorkflow`)
to check what the two do together: only failed entries are resent, rejected ones are
dead-lettered with their position, an outage is waited out within its bound.

Each harness builds a sink over an in-memory stand-in of its service that speaks the
service's own response format (Firehose ``FailedPutCount``/``ErrorCode``, DynamoDB
``UnprocessedItems`` and ``ConditionalCheckFailedException``, Timestream
``RejectedRecordsException``), so the failure paths the local emulators never produce are
exercised through each sink's real parsing code.  InfluxDB runs the same checks over a
real server in tests/integration/test_sinks_influxdb.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from consumers._pipeline_write import WriteWorkflow
from consumers.sinks.base import BatchingSink, EntryResult, Outcome
from consumers.sinks.deadletter import MemoryDeadLetter
from consumers.sinks.dynamodb import DynamoDBSink
from consumers.sinks.file import FileSink
from consumers.sinks.firehose import FirehoseSink
from consumers.sinks.mapping import FieldMapping
from consumers.sinks.memory import MemorySink
from consumers.sinks.timestream import TimestreamSink
from shardline.errors import SinkError, TransientServiceError
from shardline.metrics import NullObserver
from shardline.records import ConsumedRecord, KinesisPosition
from shardline.retry import RetryPolicy

MAPPING = FieldMapping(dimensions=("device",), measures=("temp",), time_field="ts")
KINDS = ("throttle", "retry", "reject")


NO_WAIT = RetryPolicy(max_attempts=None, deadline=None, initial_backoff=0.0, max_backoff=0.0)


def records(count: int, start: int = 1) -> list[ConsumedRecord]:
    return [
        ConsumedRecord(
            data=json.dumps({"device": f"d{i}", "temp": i * 1.5, "ts": 1_700_000_000_000 + i}).encode(),
            partition_key=f"d{i}",
            position=KinesisPosition("telemetry", "shardId-000000000001", str(i)),
        )
        for i in range(start, start + count)
    ]


def client_error(code: str, operation: str, **extra: Any) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}, **extra}
    return ClientError(response, operation)


class Harness:
    """Builds a sink over a fake service; injects failures; reads the service's state."""

    kinds: tuple[str, ...] = KINDS
    json_payloads = True
    plan: list[dict[int, str]]
    outages: int

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.plan = []
        self.outages = 0
        self.call_sizes: list[int] = []

    def build(self, **kwargs: Any) -> BatchingSink[Any]:
        raise NotImplementedError

    def state(self) -> str:
        raise NotImplementedError

    def take_plan(self, size: int) -> dict[int, str]:
        self.call_sizes.append(size)
        return self.plan.pop(0) if self.plan else {}

    def outage(self) -> None:
        if self.outages:
            self.outages -= 1
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")


def digest(values: Any) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


class MemoryHarness(Harness):
    json_payloads = False

    def build(self, **kwargs: Any) -> BatchingSink[Any]:
        harness = self

        class Scripted(MemorySink):
            async def send(self, entries: Sequence[ConsumedRecord]) -> Sequence[EntryResult]:
                if harness.outages:
                    harness.outages -= 1
                    raise TransientServiceError("down")
                plan = harness.take_plan(len(entries))
                self.inject(
                    {
                        i: EntryResult.throttled("t")
                        if kind == "throttle"
                        else EntryResult.retry("r")
                        if kind == "retry"
                        else EntryResult.rejected("bad", "Rejected")
                        for i, kind in plan.items()
                    }
                )
                return await super().send(entries)

        self.sink = Scripted(max_entries=10, **kwargs)
        return self.sink

    def state(self) -> str:
        return digest(sorted((k, v.hex()) for k, v in self.sink.items.items()))


class FileHarness(Harness):
    kinds = ()
    json_payloads = False

    def build(self, **kwargs: Any) -> BatchingSink[Any]:
        harness = self
        self.path = self.tmp_path / "sink.jsonl"

        class Counting(FileSink):
            async def send(self, entries: Sequence[dict[str, Any]]) -> Sequence[EntryResult]:
                if harness.outages:
                    harness.outages -= 1
                    raise TransientServiceError("disk busy")
                harness.take_plan(len(entries))
                return await super().send(entries)

        sink = Counting(self.path, **kwargs)
        sink.limits = type(sink.limits)(max_entries=10)
        return sink

    def state(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


class FakeFirehose:
    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.lines: list[bytes] = []

    async def put_record_batch(self, DeliveryStreamName: str, Records: list[dict[str, bytes]]) -> Any:
        self.harness.outage()
        plan = self.harness.take_plan(len(Records))
        codes = {
            "throttle": "ThrottlingException",
            "retry": "InternalFailure",
            "reject": "InvalidArgumentException",
        }
        answers = []
        for i, record in enumerate(Records):
            kind = plan.get(i)
            if kind:
                answers.append({"ErrorCode": codes[kind], "ErrorMessage": kind})
            else:
                self.lines.append(record["Data"])
                answers.append({"RecordId": str(len(self.lines))})
        return {"FailedPutCount": len(plan), "RequestResponses": answers}


class FirehoseHarness(Harness):
    json_payloads = False

    def build(self, **kwargs: Any) -> BatchingSink[Any]:
        self.fake = FakeFirehose(self)
        return FirehoseSink("archive", client=self.fake, **kwargs)

    def state(self) -> str:
        # Firehose is at-least-once; downstream deduplicates by the embedded event id.
        return digest(
            sorted({json.loads(line)["event_id"]: line.decode() for line in self.fake.lines}.items())
        )


class FakeDynamoDB:
    def __init__(self, harness: Harness, key: str = "pk", version: str = "shardline_version") -> None:
        self.harness = harness
        self.items: dict[str, dict[str, Any]] = {}
        self.key = key
        self.version = version

    async def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> Any:
        self.harness.outage()
        ((table, requests),) = RequestItems.items()
        assert len(requests) <= 25
        plan = self.harness.take_plan(len(requests))
        unprocessed = []
        for i, request in enumerate(requests):
            item = request["PutRequest"]["Item"]
            if plan.get(i):
                unprocessed.append(request)
            else:
                self.items[item[self.key]["S"]] = item
        return {"UnprocessedItems": {table: unprocessed} if unprocessed else {}}

    async def put_item(self, TableName: str, Item: dict[str, Any], **kwargs: Any) -> Any:
        self.harness.outage()
        plan = self.harness.take_plan(1)
        kind = plan.get(0)
        if kind == "throttle":
            raise client_error("ProvisionedThroughputExceededException", "PutItem")
        if kind == "retry":
            raise client_error("InternalServerError", "PutItem")
        if kind == "reject":
            raise client_error("ValidationException", "PutItem")
        old = self.items.get(Item[self.key]["S"])
        new_version = int(kwargs["ExpressionAttributeValues"][":v"]["N"])
        if old is not None and int(old[self.version]["N"]) >= new_version:
            raise client_error("ConditionalCheckFailedException", "PutItem")
        self.items[Item[self.key]["S"]] = Item
        return {}


class DynamoDBHarness(Harness):
    kinds: tuple[str, ...] = ("throttle",)

    def build(self, **kwargs: Any) -> BatchingSink[Any]:
        self.fake = FakeDynamoDB(self)
        return DynamoDBSink("table", client=self.fake, **kwargs)

    def state(self) -> str:
        return digest(self.fake.items)


class GuardedDynamoDBHarness(DynamoDBHarness):
    kinds = KINDS
    _left = 0
    _index = 0
    _failures = 0
    _chunk = 1
    _next_size = 1
    _current: dict[int, str]

    def build(self, **kwargs: Any) -> BatchingSink[Any]:
        self.fake = FakeDynamoDB(self)
        return DynamoDBSink("table", client=self.fake, guarded=True, concurrency=1, **kwargs)

    def take_plan(self, size: int) -> dict[int, str]:
        # Guarded writes are one PutItem per item: a planned "call" is spread over the puts
        # of one round (the chunk, then the entries that failed in the round before).
        if self._left == 0:
            self._current = self.plan.pop(0) if self.plan else {}
            self._left, self._index, self._failures = self._next_size, 0, 0
        kind = self._current.get(self._index)
        self._index += 1
        self._left -= 1
        self._failures += 1 if kind else 0
        if self._left <= 0:
            self._left = 0
            self._next_size = self._failures or self._chunk
        return {0: kind} if kind else {}

    def build_chunk_size(self, size: int) -> None:
        self._chunk = self._next_size = size
        self._left = 0
        self._current = {}


class FakeTimestream:
    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.points: dict[str, tuple[Any, int]] = {}

    async def write_records(
        self, DatabaseName: str, TableName: str, CommonAttributes: Any, Records: Any
    ) -> Any:
        self.harness.outage()
        assert len(Records) <= 100
        plan = self.harness.take_plan(len(Records))
        rejected = []
        for i, record in enumerate(Records):
            key = json.dumps([record["Dimensions"], record["Time"], CommonAttributes.get("MeasureName")])
            value = record.get("MeasureValues")
            existing = self.points.get(key)
            if plan.get(i):
                rejected.append({"RecordIndex": i, "Reason": "too old"})
            elif existing is not None and existing[0] != value and existing[1] >= record["Version"]:
                rejected.append({"RecordIndex": i, "Reason": "version", "ExistingVersion": existing[1]})
            else:
                self.points[key] = (value, record["Version"])
        if rejected:
            raise client_error("RejectedRecordsException", "WriteRecords", RejectedRecords=rejected)
        return {}


class TimestreamHarness(Harness):
    kinds = ("reject",)

    def build(self, **kwargs: Any) -> BatchingSink[Any]:
        self.fake = FakeTimestream(self)
        return TimestreamSink("db", "table", client=self.fake, mapping=MAPPING, **kwargs)

    def state(self) -> str:
        return digest(self.fake.points)


HARNESSES: dict[str, Callable[[Path], Harness]] = {
    "memory": MemoryHarness,
    "file": FileHarness,
    "firehose": FirehoseHarness,
    "dynamodb": DynamoDBHarness,
    "dynamodb-guarded": GuardedDynamoDBHarness,
    "timestream": TimestreamHarness,
}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    return HARNESSES[request.param](tmp_path)


def _capability(name: str) -> Any:
    """The harness class behind ``name`` (a class attribute tells what its service can do)."""
    return HARNESSES[name]


def for_sinks_that(predicate: Callable[[Any], bool]) -> pytest.MarkDecorator:
    """Run a test only against the sinks whose service can produce the case at all."""
    names = [name for name in sorted(HARNESSES) if predicate(_capability(name))]
    return pytest.mark.parametrize("harness", names, indirect=True)


def build(harness: Harness, **kwargs: Any) -> tuple[BatchingSink[Any], MemoryDeadLetter]:
    sink = harness.build(**kwargs)
    if isinstance(harness, GuardedDynamoDBHarness):
        harness.build_chunk_size(0)
    return sink, MemoryDeadLetter()


async def deliver(
    sink: BatchingSink[Any],
    batch: Sequence[ConsumedRecord],
    dead: MemoryDeadLetter | None,
    *,
    entry_attempts: int = 8,
    retry: RetryPolicy = NO_WAIT,
) -> WriteWorkflow:
    """Write ``batch`` through the pipeline's write workflow (no waiting between rounds)."""
    workflow = WriteWorkflow(sink, dead, retry=retry, entry_attempts=entry_attempts, observer=NullObserver())
    resolved = [False] * len(batch)
    await workflow.write(batch, [record.position for record in batch], resolved)
    assert all(resolved)
    return workflow


OUTCOME_OF_KIND = {"throttle": Outcome.THROTTLED, "retry": Outcome.RETRY, "reject": Outcome.REJECTED}


# --- the sink alone: one try, one outcome per record ----------------------------------------------


@pytest.mark.parametrize(
    ("harness", "kind"),
    [(name, kind) for name in sorted(HARNESSES) for kind in KINDS if kind in _capability(name).kinds],
    indirect=["harness"],
)
async def test_write_tries_once_and_reports_each_records_outcome(harness: Harness, kind: str) -> None:
    sink, _ = build(harness)
    if isinstance(harness, GuardedDynamoDBHarness):
        harness.build_chunk_size(5)
    harness.plan = [{1: kind, 3: kind}]
    results = await sink.write(records(5))
    outcomes = [result.outcome for result in results]
    expected = OUTCOME_OF_KIND[kind]
    if isinstance(harness, DynamoDBHarness) and not isinstance(harness, GuardedDynamoDBHarness):
        expected = Outcome.THROTTLED  # BatchWriteItem only says "unprocessed"
    assert outcomes == [Outcome.WRITTEN, expected, Outcome.WRITTEN, expected, Outcome.WRITTEN]
    assert sink.stats.written == 3
    if not isinstance(harness, GuardedDynamoDBHarness):
        assert harness.call_sizes == [5]  # nothing resent by the sink itself


def test_a_sink_cannot_sleep_or_dead_letter() -> None:
    import inspect

    parameters = inspect.signature(BatchingSink.__init__).parameters
    assert set(parameters) == {"self", "observer"}


async def test_an_outage_is_reported_unavailable_without_sending_the_other_chunks(harness: Harness) -> None:
    sink, _ = build(harness)
    limit = sink.limits.max_entries
    if isinstance(harness, GuardedDynamoDBHarness):
        harness.build_chunk_size(limit)
    harness.outages = 2 * limit + 1
    results = await sink.write(records(2 * limit + 1))
    assert {result.outcome for result in results[:limit]} == {Outcome.UNAVAILABLE}
    assert {result.outcome for result in results[limit:]} == {Outcome.UNSENT}
    assert sink.stats.calls == 1  # the later chunks are not tried
    assert sink.stats.written == 0


@pytest.mark.parametrize(
    ("harness", "kind"),
    [(name, kind) for name in sorted(HARNESSES) for kind in KINDS if kind in _capability(name).kinds],
    indirect=["harness"],
)
async def test_a_later_chunk_waits_for_an_earlier_one_to_resolve(harness: Harness, kind: str) -> None:
    sink, _ = build(harness)
    limit = sink.limits.max_entries
    if isinstance(harness, GuardedDynamoDBHarness):
        harness.build_chunk_size(limit)
    harness.plan = [{0: kind}]
    results = await sink.write(records(limit + 1))
    if kind == "reject":  # final: nothing to keep the next chunk back for
        assert results[-1].outcome is Outcome.WRITTEN
    else:  # per-key order: nothing after a record still to resend is sent before it
        assert results[-1].outcome is Outcome.UNSENT


POISON_PAYLOADS = {
    "not JSON": b"\x00not json",
    "nested past the parser's depth": b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "a JSON array": b"[1, 2]",
}


@for_sinks_that(lambda cls: cls.json_payloads)
@pytest.mark.parametrize("payload", sorted(POISON_PAYLOADS))
async def test_poison_payload_is_rejected_before_any_call(harness: Harness, payload: str) -> None:
    """Each is rejected on its own, typed, without failing the call it came in (a
    RecursionError was outside the tree: the whole call failed and was bisected)."""
    sink, _ = build(harness)
    if isinstance(harness, GuardedDynamoDBHarness):
        harness.build_chunk_size(2)
    poison = ConsumedRecord(
        POISON_PAYLOADS[payload], "k", KinesisPosition("telemetry", "shardId-000000000001", "99")
    )
    results = await sink.write([poison, *records(2)])
    assert results[0].outcome is Outcome.REJECTED
    assert results[0].error_type == "SerializationError"
    assert [result.outcome for result in results[1:]] == [Outcome.WRITTEN, Outcome.WRITTEN]


# --- the sink driven by the pipeline's write workflow ---------------------------------------------


async def test_same_batch_twice_leaves_the_same_state(harness: Harness) -> None:
    sink, dead = build(harness)
    batch = records(12)
    await deliver(sink, batch, dead)
    once = harness.state()
    await deliver(sink, batch, dead)
    await deliver(sink, batch[3:7], dead)
    assert harness.state() == once
    assert sink.stats.written + sink.stats.duplicates >= 12
    assert not dead.entries


async def test_batches_are_chunked_to_the_api_limit(harness: Harness) -> None:
    sink, dead = build(harness)
    limit = sink.limits.max_entries
    if isinstance(harness, GuardedDynamoDBHarness):
        harness.build_chunk_size(limit)
    count = 2 * limit + 1
    await deliver(sink, records(count), dead)
    if isinstance(harness, GuardedDynamoDBHarness):
        assert sink.stats.calls == 3 and sink.stats.written == count
        return
    assert sorted(harness.call_sizes, reverse=True) == [limit, limit, 1]


@pytest.mark.parametrize(
    ("harness", "kind"),
    [
        (name, kind)
        for name in sorted(HARNESSES)
        for kind in ("throttle", "retry")
        if kind in _capability(name).kinds
    ],
    indirect=["harness"],
)
async def test_only_failed_entries_are_resent(harness: Harness, kind: str) -> None:
    sink, dead = build(harness)
    if isinstance(harness, GuardedDynamoDBHarness):
        harness.build_chunk_size(5)
    harness.plan = [{1: kind, 3: kind}]
    workflow = await deliver(sink, records(5), dead)
    if not isinstance(harness, GuardedDynamoDBHarness):
        assert harness.call_sizes == [5, 2]
    assert sink.stats.written == 5 and workflow.counts.retries == 1
    assert workflow.counts.written == 5
    assert not dead.entries
    reference = type(harness)(harness.tmp_path / "ref")
    (reference.tmp_path).mkdir()
    ref_sink, ref_dead = build(reference)
    await deliver(ref_sink, records(5), ref_dead)
    assert harness.state() == reference.state()


@for_sinks_that(lambda cls: "reject" in cls.kinds)
async def test_rejected_entries_are_dead_lettered_with_reason_and_position(harness: Harness) -> None:
    sink, dead = build(harness)
    if isinstance(harness, GuardedDynamoDBHarness):
        harness.build_chunk_size(4)
    batch = records(4)
    harness.plan = [{2: "reject"}]
    workflow = await deliver(sink, batch, dead)
    assert list(dead.entries) == [batch[2].identity]
    entry = dead.entries[batch[2].identity]
    assert entry.reason and entry.error_type and entry.attempts == 1
    assert entry.source_position == batch[2].position
    assert entry.destination == sink.name
    assert sink.stats.written == 3 and workflow.counts.dead_lettered == 1


@for_sinks_that(lambda cls: "retry" in cls.kinds)
async def test_entries_that_keep_failing_are_dead_lettered_after_entry_attempts(harness: Harness) -> None:
    sink, dead = build(harness)
    if isinstance(harness, GuardedDynamoDBHarness):
        harness.build_chunk_size(2)
    harness.plan = [{0: "retry"}, {0: "retry"}, {0: "retry"}]
    batch = records(2)
    await deliver(sink, batch, dead, entry_attempts=3)
    assert dead.entries[batch[0].identity].attempts == 3
    assert sink.stats.written == 1


@for_sinks_that(lambda cls: cls.json_payloads)
async def test_poison_payload_is_dead_lettered_and_the_rest_written(harness: Harness) -> None:
    sink, dead = build(harness)
    if isinstance(harness, GuardedDynamoDBHarness):
        harness.build_chunk_size(2)
    poison = ConsumedRecord(b"\x00not json", "k", KinesisPosition("telemetry", "shardId-000000000001", "99"))
    await deliver(sink, [poison, *records(2)], dead)
    assert dead.entries[poison.identity].error_type == "SerializationError"
    assert sink.stats.written == 2


async def test_a_destination_down_for_a_while_loses_nothing(harness: Harness) -> None:
    sink, dead = build(harness)
    if isinstance(harness, GuardedDynamoDBHarness):
        harness.build_chunk_size(3)
    harness.outages = 4
    await deliver(sink, records(3), dead)
    assert harness.outages == 0
    assert sink.stats.written == 3 and not dead.entries


async def test_the_outage_bound_raises_sink_error_instead_of_acknowledging(harness: Harness) -> None:
    sink, dead = build(harness)
    harness.outages = 1000
    bounded = RetryPolicy(max_attempts=3, deadline=None, initial_backoff=0.0, max_backoff=0.0)
    workflow = WriteWorkflow(sink, dead, retry=bounded, entry_attempts=8, observer=NullObserver())
    resolved = [False, False]
    batch = records(2)
    with pytest.raises(SinkError):
        await workflow.write(batch, [record.position for record in batch], resolved)
    assert resolved == [False, False]
    assert not dead.entries


@for_sinks_that(lambda cls: "reject" in cls.kinds)
async def test_without_dead_letter_a_rejection_raises(harness: Harness) -> None:
    sink, _ = build(harness)
    if isinstance(harness, GuardedDynamoDBHarness):
        harness.build_chunk_size(2)
    harness.plan = [{0: "reject"}]
    workflow = WriteWorkflow(sink, None, retry=NO_WAIT, entry_attempts=8, observer=NullObserver())
    batch = records(2)
    resolved = [False, False]
    with pytest.raises(SinkError):
        await workflow.write(batch, [record.position for record in batch], resolved)
    assert resolved == [False, True]
