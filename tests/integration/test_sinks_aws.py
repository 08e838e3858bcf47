"""The AWS sinks over moto server's real wire protocol: Firehose -> S3, DynamoDB, Timestream, S3 DLQ.

Every test writes the same range twice and reads the destination back: the state after two
runs must hash the same as after one (RELIABILITY row 18).  Poison records land in an S3
dead-letter prefix with their reason and position, and a retried dead-letter put does not
add objects.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiobotocore.session import get_session

from consumers.sinks.deadletter import S3DeadLetter
from consumers.sinks.dynamodb import DynamoDBSink
from consumers.sinks.encoding import event_id
from consumers.sinks.firehose import FirehoseSink
from consumers.sinks.mapping import FieldMapping
from consumers.sinks.timestream import TimestreamSink
from shardline.limits import FIREHOSE_BATCH_MAX_RECORDS
from shardline.records import ConsumedRecord, KinesisPosition
from shardline.retry import RetryPolicy
from tests.faults.workflow import deliver
from tests.integration.sink_readback import (
    dead_letter_state,
    dynamodb_state,
    firehose_state,
    new_delivery_stream,
    s3_objects,
    timestream_received,
    timestream_state,
)

pytestmark = pytest.mark.integration

ARRIVAL = datetime(2024, 5, 1, tzinfo=UTC)


def record(seq: int, payload: dict[str, Any] | bytes, shard: str = "shardId-000000000000") -> ConsumedRecord:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return ConsumedRecord(
        data,
        f"dev-{seq % 7}",
        KinesisPosition("telemetry", shard, str(seq)),
        arrival_time=ARRIVAL + timedelta(seconds=seq),
    )


def telemetry(count: int, start: int = 1) -> list[ConsumedRecord]:
    return [
        record(i, {"device": f"d{i % 5}", "temp": 20.0 + i / 4, "ts": 1_714_521_600_000 + i})
        for i in range(start, start + count)
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


async def new_bucket(s3: Any) -> str:
    bucket = f"sink-{uuid.uuid4().hex[:12]}"
    await s3.create_bucket(Bucket=bucket)
    return bucket


async def new_timestream_table(timestream: Any) -> tuple[str, str]:
    """A new Timestream database and table in it: (database, table)."""
    database, table = f"db{uuid.uuid4().hex[:10]}", f"t{uuid.uuid4().hex[:10]}"
    await timestream.create_database(DatabaseName=database)
    await timestream.create_table(DatabaseName=database, TableName=table)
    return database, table


async def new_table(dynamodb: Any, key: str = "pk") -> str:
    table = f"sink-{uuid.uuid4().hex[:12]}"
    await dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return table


async def test_firehose_lands_newline_delimited_json_with_event_ids_in_s3(aws: dict[str, Any]) -> None:
    bucket = await new_bucket(aws["s3"])
    stream = await new_delivery_stream(aws["firehose"], bucket)
    batch = telemetry(FIREHOSE_BATCH_MAX_RECORDS + 20)
    sink = FirehoseSink(stream, client=aws["firehose"])

    await sink.write(batch)
    once, lines = await firehose_state(aws["s3"], bucket, "raw/")
    objects_once = await s3_objects(aws["s3"], bucket, "raw/")
    await sink.write(batch)
    twice, _ = await firehose_state(aws["s3"], bucket, "raw/")
    objects_twice = await s3_objects(aws["s3"], bucket, "raw/")

    assert once == twice  # at-least-once delivery, deduplicated downstream by event id
    assert len(objects_once) == 2  # 520 records need two PutRecordBatch calls of <= 500
    raw_lines = sum(len(body.splitlines()) for body in objects_twice.values())
    assert raw_lines == 2 * len(batch)  # the second run really delivered again
    assert set(lines) == {event_id(r) for r in batch}
    first = batch[0]
    line = lines[event_id(first)]
    assert base64.b64decode(line["data"]) == first.data
    assert line["position"]["sequence_number"] == "1"
    assert (sink.stats.written, sink.stats.calls) == (2 * len(batch), 4)


async def test_dynamodb_batch_mode_replayed_twice_and_poison_to_s3_dead_letters(aws: dict[str, Any]) -> None:
    table = await new_table(aws["dynamodb"])
    bucket = await new_bucket(aws["s3"])
    dead = S3DeadLetter(bucket, "dlq", client=aws["s3"])
    batch = [*telemetry(60), record(61, b"\xff not json"), record(62, b"[1, 2]")]
    sink = DynamoDBSink(table, client=aws["dynamodb"])

    await deliver(sink, batch, dead)
    once, items = await dynamodb_state(aws["dynamodb"], table)
    dlq_once, entries = await dead_letter_state(aws["s3"], bucket, "dlq/")
    await deliver(sink, batch, dead)
    twice, _ = await dynamodb_state(aws["dynamodb"], table)
    dlq_twice, _ = await dead_letter_state(aws["s3"], bucket, "dlq/")

    assert once == twice
    assert dlq_once == dlq_twice
    assert len(await s3_objects(aws["s3"], bucket, "dlq/")) == 1  # same key on the retried put
    assert len(items) == 60
    by_key = {item["pk"]["S"]: item for item in items}
    item = by_key["telemetry/shardId-000000000000/7/0"]
    assert (item["device"]["S"], item["temp"]["N"], item["shardline_version"]["N"]) == ("d2", "21.75", "7168")
    assert [(e["position"]["sequence_number"], e["error_type"]) for e in entries] == [
        ("61", "SerializationError"),
        ("62", "SerializationError"),
    ]
    assert base64.b64decode(entries[0]["data"]) == b"\xff not json"
    assert entries[0]["reason"] and entries[0]["destination"] == "dynamodb"
    assert sink.stats.calls == 2 * 3  # 60 items in chunks of <= 25, twice


async def test_dynamodb_guarded_replay_is_absorbed_and_never_regresses_newer_items(
    aws: dict[str, Any],
) -> None:
    table = await new_table(aws["dynamodb"], key="device")
    mapping = FieldMapping(keys=("device",))
    live = DynamoDBSink(table, client=aws["dynamodb"], guarded=True, mapping=mapping)
    await live.write([record(100 + i, {"device": f"d{i}", "temp": 1000 + i}) for i in range(4)])
    backfill_range = [record(10 + i, {"device": f"d{i}", "temp": i}) for i in range(8)]

    first = DynamoDBSink(table, client=aws["dynamodb"], guarded=True, mapping=mapping)
    await first.write(backfill_range)
    once, items = await dynamodb_state(aws["dynamodb"], table)
    second = DynamoDBSink(table, client=aws["dynamodb"], guarded=True, mapping=mapping)
    await second.write(backfill_range)
    twice, _ = await dynamodb_state(aws["dynamodb"], table)

    assert once == twice
    temps = {item["device"]["S"]: int(item["temp"]["N"]) for item in items}
    assert temps == {"d0": 1000, "d1": 1001, "d2": 1002, "d3": 1003, "d4": 4, "d5": 5, "d6": 6, "d7": 7}
    assert (first.stats.written, first.stats.duplicates) == (4, 4)
    assert (second.stats.written, second.stats.duplicates) == (0, 8)


async def test_dynamodb_guarded_takes_over_an_item_written_without_a_version(aws: dict[str, Any]) -> None:
    """An item of the table written by something else (a migration, another writer) carries no
    version attribute.  ``#version < :version`` is false on a missing attribute, so every
    guarded write of that key failed its condition and was counted a duplicate: the stream's
    records for it were acknowledged and never written, for good."""
    table = await new_table(aws["dynamodb"], key="device")
    await aws["dynamodb"].put_item(TableName=table, Item={"device": {"S": "d1"}, "temp": {"N": "-1"}})
    mapping = FieldMapping(keys=("device",))
    sink = DynamoDBSink(table, client=aws["dynamodb"], guarded=True, mapping=mapping)
    await sink.write([record(10, {"device": "d1", "temp": 10})])
    older = DynamoDBSink(table, client=aws["dynamodb"], guarded=True, mapping=mapping)
    await older.write([record(5, {"device": "d1", "temp": 5})])  # now versioned: never regressed

    _, items = await dynamodb_state(aws["dynamodb"], table)
    assert [int(item["temp"]["N"]) for item in items] == [10]
    assert (sink.stats.written, sink.stats.duplicates) == (1, 0)
    assert (older.stats.written, older.stats.duplicates) == (0, 1)


REAL_SEQUENCES = (  # real Kinesis sequence numbers: past 2**53, so versions come from arrival times
    "49590338271490256608559692538361571095921575989136588898",
    "49590338271490256608559692540925702759324208523137515618",
    "49590338271490256608559692540925702759324208523137515619",
)


def same_millisecond(sequence: str, payload: dict[str, Any]) -> ConsumedRecord:
    """A plain record of one PutRecords request: every such record shares its arrival time."""
    return ConsumedRecord(
        json.dumps(payload).encode(),
        "d1",
        KinesisPosition("telemetry", "shardId-000000000000", sequence),
        arrival_time=ARRIVAL,
    )


@pytest.mark.parametrize("order", ["in stream order", "newest first", "in one batch"])
async def test_dynamodb_guarded_keeps_the_newest_of_readings_sharing_an_arrival_millisecond(
    aws: dict[str, Any], order: str
) -> None:
    table = await new_table(aws["dynamodb"], key="device")
    mapping = FieldMapping(keys=("device",))
    readings = [same_millisecond(seq, {"device": "d1", "temp": n}) for n, seq in enumerate(REAL_SEQUENCES)]
    sink = DynamoDBSink(table, client=aws["dynamodb"], guarded=True, mapping=mapping)
    if order == "in one batch":
        await sink.write(readings)
    else:
        for reading in readings if order == "in stream order" else reversed(readings):
            await sink.write([reading])
    replay = DynamoDBSink(table, client=aws["dynamodb"], guarded=True, mapping=mapping)
    await replay.write(readings)

    _, items = await dynamodb_state(aws["dynamodb"], table)
    assert [int(item["temp"]["N"]) for item in items] == [2]  # the newest reading, whatever the order
    assert items[0]["shardline_version_position"]["S"].endswith(REAL_SEQUENCES[2] + "0" * 10)
    assert (replay.stats.written, replay.stats.duplicates) == (0, 3)


async def test_timestream_upserts_by_position_version_and_dead_letters_what_it_cannot_map(
    aws: dict[str, Any], moto_endpoint: str
) -> None:
    database, table = await new_timestream_table(aws["timestream"])
    bucket = await new_bucket(aws["s3"])
    mapping = FieldMapping(dimensions=("device",), measures=("temp",), time_field="ts")
    batch = [*telemetry(150), record(151, {"device": "d1", "ts": 1_714_521_600_151})]
    dead = S3DeadLetter(bucket, "dlq", client=aws["s3"])
    sink = TimestreamSink(database, table, mapping=mapping, client=aws["timestream"])

    await deliver(sink, batch, dead)
    once, points = await timestream_state(moto_endpoint, database, table)
    await deliver(sink, batch, dead)
    twice, _ = await timestream_state(moto_endpoint, database, table)

    assert once == twice
    assert len(await timestream_received(moto_endpoint, database, table)) == 2 * 150  # written twice
    assert len(points) == 150
    point = next(p for p in points.values() if p["Time"] == str((1_714_521_600_000 + 3) * 1_000_000))
    assert point["Version"] == 3 * 1024
    assert point["Dimensions"] == [{"Name": "device", "Value": "d3"}]
    assert point["MeasureValues"] == [{"Name": "temp", "Value": "20.75", "Type": "DOUBLE"}]
    _, entries = await dead_letter_state(aws["s3"], bucket, "dlq/")
    assert [(e["position"]["sequence_number"], e["error_type"]) for e in entries] == [
        ("151", "ValidationError")
    ]
    assert sink.stats.calls == 2 * 2  # <= 100 Timestream records per call


async def test_timestream_records_botocore_or_timestream_would_refuse_do_not_fail_their_neighbours_call(
    aws: dict[str, Any], moto_endpoint: str
) -> None:
    database, table = await new_timestream_table(aws["timestream"])
    bucket = await new_bucket(aws["s3"])
    mapping = FieldMapping(dimensions=("device",), time_field="ts")
    crafted = [
        record(2, b'{"device": "d2", "ts": 1714521600002, "label": ""}'),  # botocore: whole call
        record(3, b'{"device": "d3", "ts": 1714521600003, "temp": NaN}'),
        record(4, b'{"device": "d4", "ts": 1714521600004, "": 1}'),  # botocore: whole call
        record(5, b'{"device": "", "ts": 1714521600005, "temp": 1}'),
    ]
    batch = [*telemetry(1), *crafted, *telemetry(1, start=6)]
    dead = S3DeadLetter(bucket, "dlq", client=aws["s3"])
    sink = TimestreamSink(database, table, mapping=mapping, client=aws["timestream"])

    await deliver(sink, batch, dead)

    assert sink.stats.calls == 1  # no call failed as a whole, nothing bisected
    received = await timestream_received(moto_endpoint, database, table)
    assert sorted(r["Dimensions"][0]["Value"] for r in received) == ["d1", "d1"]  # records 1 and 6
    _, entries = await dead_letter_state(aws["s3"], bucket, "dlq/")
    assert sorted(int(e["position"]["sequence_number"]) for e in entries) == [2, 3, 4, 5]
    assert {e["error_type"] for e in entries} == {"ValidationError"}


async def test_dynamodb_texts_without_a_utf8_form_are_refused_alone_and_their_neighbours_land(
    aws: dict[str, Any],
) -> None:
    # moto answers HTTP 500 for the whole BatchWriteItem: waited out as an outage, the batch
    # stayed unwritten until the workflow gave up
    table = await new_table(aws["dynamodb"])
    bucket = await new_bucket(aws["s3"])
    dead = S3DeadLetter(bucket, "dlq", client=aws["s3"])
    crafted = [
        record(2, b'{"label": "\\ud800"}'),  # a value
        record(3, b'{"\\udfff": 1}'),  # an attribute name
        record(4, b'{"nested": [{"deeper": "\\ud83d"}]}'),  # half a pair, deep down
    ]
    batch = [*telemetry(1), *crafted, *telemetry(1, start=5)]
    sink = DynamoDBSink(table, client=aws["dynamodb"])

    await deliver(sink, batch, dead, retry=RetryPolicy(max_attempts=2, initial_backoff=0.0, max_backoff=0.0))

    _, items = await dynamodb_state(aws["dynamodb"], table)
    assert sorted(item["pk"]["S"].split("/")[2] for item in items) == ["1", "5"]
    _, entries = await dead_letter_state(aws["s3"], bucket, "dlq/")
    assert sorted(int(e["position"]["sequence_number"]) for e in entries) == [2, 3, 4]
    assert {e["error_type"] for e in entries} == {"SerializationError"}
    assert sink.stats.calls == 1


async def test_dynamodb_numbers_past_its_range_are_refused_alone_and_their_neighbours_land(
    aws: dict[str, Any],
) -> None:
    # boto3's serializer takes 1E-131 (a subnormal of its decimal context); moto, like
    # DynamoDB, refuses it for the whole BatchWriteItem, which was then bisected
    table = await new_table(aws["dynamodb"])
    bucket = await new_bucket(aws["s3"])
    dead = S3DeadLetter(bucket, "dlq", client=aws["s3"])
    crafted = [record(2, b'{"reading": 1E-131}'), record(3, b'{"nested": {"readings": [1, -2.5E-140]}}')]
    batch = [*telemetry(1), *crafted, *telemetry(1, start=4)]
    sink = DynamoDBSink(table, client=aws["dynamodb"])

    await deliver(sink, batch, dead, retry=RetryPolicy(max_attempts=2, initial_backoff=0.0, max_backoff=0.0))

    _, items = await dynamodb_state(aws["dynamodb"], table)
    assert sorted(item["pk"]["S"].split("/")[2] for item in items) == ["1", "4"]
    _, entries = await dead_letter_state(aws["s3"], bucket, "dlq/")
    assert sorted(int(e["position"]["sequence_number"]) for e in entries) == [2, 3]
    assert {e["error_type"] for e in entries} == {"SerializationError"}
    assert sink.stats.calls == 1
