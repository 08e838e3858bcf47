"""Partial failures and throttling that moto never produces, injected over the real wire.

The sinks are driven by the pipeline's write workflow, the one place that resends, backs off
and dead-letters.  RELIABILITY row 15: only the failed entries are resent (checked on the request bodies that
really went on the wire), with back-off; busy-destination failures are never dead-lettered;
row 16: rejected records go to the dead-letter destination with their reason and position.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.session import get_session

from consumers.sinks.base import BatchingSink
from consumers.sinks.deadletter import MemoryDeadLetter
from consumers.sinks.dynamodb import DynamoDBSink
from consumers.sinks.firehose import FirehoseSink
from consumers.sinks.mapping import FieldMapping
from consumers.sinks.timestream import TimestreamSink
from shardline.records import ConsumedRecord, KinesisPosition
from tests.faults.wire_faults import (
    CallErrors,
    DynamoDBUnprocessedItems,
    FirehoseFailedPuts,
    TimestreamRejections,
    WireTap,
)
from tests.faults.workflow import Sleeps, deliver
from tests.integration.sink_readback import dynamodb_state, firehose_state, timestream_received

pytestmark = pytest.mark.integration


def telemetry(count: int) -> list[ConsumedRecord]:
    return [
        ConsumedRecord(
            json.dumps({"device": f"d{i}", "temp": i, "ts": 1_714_521_600_000 + i}).encode(),
            f"d{i}",
            KinesisPosition("telemetry", "shardId-000000000000", str(i)),
        )
        for i in range(1, count + 1)
    ]


@pytest.fixture
async def aws(moto_endpoint: str) -> AsyncIterator[dict[str, Any]]:
    session = get_session()
    async with (
        session.create_client("s3", endpoint_url=moto_endpoint) as s3,
        session.create_client("firehose", endpoint_url=moto_endpoint) as firehose,
        session.create_client("dynamodb", endpoint_url=moto_endpoint) as dynamodb,
        session.create_client("timestream-write", endpoint_url=moto_endpoint) as timestream,
    ):
        yield {"s3": s3, "firehose": firehose, "dynamodb": dynamodb, "timestream": timestream}


async def delivery_stream(aws: dict[str, Any]) -> tuple[str, str]:
    bucket = f"faults-{uuid.uuid4().hex[:12]}"
    await aws["s3"].create_bucket(Bucket=bucket)
    name = f"faults-{uuid.uuid4().hex[:12]}"
    await aws["firehose"].create_delivery_stream(
        DeliveryStreamName=name,
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": "raw/",
        },
    )
    return name, bucket


async def table(aws: dict[str, Any]) -> str:
    name = f"faults-{uuid.uuid4().hex[:12]}"
    await aws["dynamodb"].create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def firehose_sequences(body: dict[str, Any]) -> list[str]:
    """Sequence numbers of the records in one PutRecordBatch request body."""
    lines = [json.loads(base64.b64decode(entry["Data"])) for entry in body["Records"]]
    return [line["position"]["sequence_number"] for line in lines]


def dynamodb_keys(body: dict[str, Any]) -> list[str]:
    ((_, requests),) = body["RequestItems"].items()
    return [request["PutRequest"]["Item"]["pk"]["S"] for request in requests]


def pk(seq: int) -> str:
    return f"telemetry/shardId-000000000000/{seq}/0"


async def test_firehose_resends_only_the_failed_put_entries(aws: dict[str, Any]) -> None:
    stream, bucket = await delivery_stream(aws)
    failures = {
        (0, 3): "ServiceUnavailableException",
        (0, 7): "ThrottlingException",
        (0, 12): "InvalidArgumentException",
        (1, 0): "InternalFailure",
    }
    faults = FirehoseFailedPuts(aws["firehose"], lambda call, index, _: failures.get((call, index)))
    wire = WireTap(aws["firehose"], "firehose", "PutRecordBatch")
    dead, sleeps = MemoryDeadLetter(), Sleeps()
    sink = FirehoseSink(stream, client=aws["firehose"])
    batch = telemetry(20)

    workflow = await deliver(sink, batch, dead, sleep=sleeps)

    sent = [firehose_sequences(body) for body in wire.bodies]
    # the resend holds only the two retriable failures (and "4" failed again, so only "8" got
    # through), then only what failed again; "13" was rejected and is never resent
    assert sent[1:] == [["8"], ["4"]]
    assert len(sent[0]) == 20 - 3
    everything = [seq for call in sent for seq in call]
    assert sorted(everything, key=int) == [str(i) for i in range(1, 21) if i != 13]
    assert [entry.record.position.sequence_number for entry in dead.entries.values()] == ["13"]  # type: ignore[union-attr]
    assert next(iter(dead.entries.values())).error_type == "InvalidArgumentException"
    _, lines = await firehose_state(aws["s3"], bucket, "raw/")
    assert len(lines) == 19
    assert faults.injected == 4 and len(sleeps.delays) == 2
    assert (sink.stats.written, workflow.counts.dead_lettered, workflow.counts.retries) == (19, 1, 2)


async def test_dynamodb_unprocessed_items_are_resent_alone_and_never_dead_lettered(
    aws: dict[str, Any],
) -> None:
    name = await table(aws)
    stubborn = pk(5)

    def plan(call: int, index: int, request: dict[str, Any]) -> str | None:
        key = request["PutRequest"]["Item"]["pk"]["S"]
        if key == stubborn and call < 6:
            return "unprocessed"  # busy for longer than entry_attempts: must not be dead-lettered
        return "unprocessed" if call == 0 and index % 4 == 0 else None

    DynamoDBUnprocessedItems(aws["dynamodb"], plan)
    wire = WireTap(aws["dynamodb"], "dynamodb", "BatchWriteItem")
    dead = MemoryDeadLetter()
    sink = DynamoDBSink(name, client=aws["dynamodb"])

    workflow = await deliver(sink, telemetry(30), dead, entry_attempts=3)

    sent = [dynamodb_keys(body) for body in wire.bodies]
    first_call = [pk(i) for i in range(1, 26)]
    unprocessed_first = [key for index, key in enumerate(first_call) if index % 4 == 0 or key == stubborn]
    assert sent[0] == [key for key in first_call if key not in unprocessed_first]
    # the resend holds the unprocessed items (not the stubborn one, still refused on the server
    # side) and then the records never sent before, kept back so no key is overtaken
    assert sent[1] == [key for key in unprocessed_first if key != stubborn] + [pk(i) for i in range(26, 31)]
    assert stubborn not in sent[1] and sent.count([stubborn]) == 1  # reached the server once, at last
    flat = [key for call in sent for key in call]
    assert sorted(flat) == sorted(pk(i) for i in range(1, 31))  # each item on the wire exactly once
    _, items = await dynamodb_state(aws["dynamodb"], name)
    assert len(items) == 30
    assert not dead.entries and workflow.counts.dead_lettered == 0


async def test_timestream_rejected_records_are_dead_lettered_or_absorbed_as_duplicates(
    aws: dict[str, Any], moto_endpoint: str
) -> None:
    database, name = f"db{uuid.uuid4().hex[:10]}", f"t{uuid.uuid4().hex[:10]}"
    await aws["timestream"].create_database(DatabaseName=database)
    await aws["timestream"].create_table(DatabaseName=database, TableName=name)
    rejections = {2: f"existing:{2**40}", 5: "Measure value exceeds the maximum"}
    TimestreamRejections(aws["timestream"], lambda call, i, _: rejections.get(i) if call == 0 else None)
    wire = WireTap(aws["timestream"], "timestream-write", "WriteRecords")
    dead = MemoryDeadLetter()
    mapping = FieldMapping(dimensions=("device",), measures=("temp",), time_field="ts")
    sink = TimestreamSink(database, name, mapping=mapping, client=aws["timestream"])

    workflow = await deliver(sink, telemetry(12), dead)

    assert len(wire.bodies) == 1  # rejections are final: nothing is resent
    assert len(await timestream_received(moto_endpoint, database, name)) == 10
    (entry,) = dead.entries.values()
    assert entry.record.position.sequence_number == "6"  # type: ignore[union-attr]
    assert entry.reason == "sink write failed: Measure value exceeds the maximum"
    assert entry.error_type == "RejectedRecordsException"
    assert (sink.stats.written, sink.stats.duplicates, workflow.counts.dead_lettered) == (10, 1, 1)


async def test_throttled_calls_back_off_and_are_sent_once_the_service_accepts(
    aws: dict[str, Any], moto_endpoint: str
) -> None:
    stream, bucket = await delivery_stream(aws)
    name = await table(aws)
    database, ts_table = f"db{uuid.uuid4().hex[:10]}", f"t{uuid.uuid4().hex[:10]}"
    await aws["timestream"].create_database(DatabaseName=database)
    await aws["timestream"].create_table(DatabaseName=database, TableName=ts_table)
    throttles = [
        CallErrors(
            aws["firehose"],
            "firehose",
            "PutRecordBatch",
            lambda n, _: "ThrottlingException" if n < 3 else None,
        ),
        CallErrors(
            aws["dynamodb"],
            "dynamodb",
            "BatchWriteItem",
            lambda n, _: "ProvisionedThroughputExceededException" if n < 2 else None,
        ),
        CallErrors(
            aws["timestream"],
            "timestream-write",
            "WriteRecords",
            lambda n, _: "ThrottlingException" if n < 4 else None,
        ),
    ]
    mapping = FieldMapping(dimensions=("device",), measures=("temp",), time_field="ts")
    sleeps = [Sleeps(), Sleeps(), Sleeps()]
    sinks: list[BatchingSink[Any]] = [
        FirehoseSink(stream, client=aws["firehose"]),
        DynamoDBSink(name, client=aws["dynamodb"]),
        TimestreamSink(database, ts_table, mapping=mapping, client=aws["timestream"]),
    ]
    batch = telemetry(20)

    workflows = [
        # entry_attempts=1: throttling never uses up a record's attempts
        await deliver(sink, batch, MemoryDeadLetter(), entry_attempts=1, sleep=sleep)
        for sink, sleep in zip(sinks, sleeps, strict=True)
    ]

    assert [len(t.answered) for t in throttles] == [3, 2, 4]
    assert [len(s.delays) for s in sleeps] == [3, 2, 4]
    _, lines = await firehose_state(aws["s3"], bucket, "raw/")
    _, items = await dynamodb_state(aws["dynamodb"], name)
    received = await timestream_received(moto_endpoint, database, ts_table)
    assert (len(lines), len(items), len(received)) == (20, 20, 20)
    assert all(workflow.counts.dead_lettered == 0 for workflow in workflows)


async def test_guarded_puts_resend_only_the_throttled_items(aws: dict[str, Any]) -> None:
    name = await table(aws)
    throttled = {pk(3), pk(9)}
    seen: list[str] = []

    def fail(call: int, body: dict[str, Any]) -> str | None:
        key = body["Item"]["pk"]["S"]
        seen.append(key)
        return "ProvisionedThroughputExceededException" if key in throttled and seen.count(key) == 1 else None

    CallErrors(aws["dynamodb"], "dynamodb", "PutItem", fail)
    wire = WireTap(aws["dynamodb"], "dynamodb", "PutItem")
    sink = DynamoDBSink(name, client=aws["dynamodb"], guarded=True)

    await deliver(sink, telemetry(10), MemoryDeadLetter(), entry_attempts=1)

    assert sorted(seen) == sorted([pk(i) for i in range(1, 11)] + sorted(throttled))
    assert sorted(seen[10:]) == sorted(throttled)  # the second round holds only the throttled items
    on_wire = [body["Item"]["pk"]["S"] for body in wire.bodies]
    assert sorted(on_wire) == sorted(pk(i) for i in range(1, 11))
    _, items = await dynamodb_state(aws["dynamodb"], name)
    assert len(items) == 10 and sink.stats.written == 10
