"""Backfill from a Firehose S3 archive into DynamoDB over moto's real wire protocol.

Replaying the same archive twice must leave the table exactly as one run did, a backfill
of older records must not regress newer items (guarded mode), and poison records must land
in the dead-letter file with their metadata.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.replay.job import ReplayJob
from consumers.replay.ranges import S3ArchiveReader
from consumers.sinks.deadletter import FileDeadLetter
from consumers.sinks.dynamodb import DynamoDBSink
from consumers.sinks.firehose import encode_line
from consumers.sinks.mapping import FieldMapping
from shardline.records import ConsumedRecord, KinesisPosition

pytestmark = pytest.mark.integration


def record(seq: int, payload: bytes) -> ConsumedRecord:
    return ConsumedRecord(payload, "dev", KinesisPosition("telemetry", "shardId-000000000000", str(seq)))


@pytest.fixture
async def clients(moto_endpoint: str) -> AsyncIterator[tuple[Any, Any]]:
    session = get_session()
    async with (
        session.create_client("s3", endpoint_url=moto_endpoint) as s3,
        session.create_client("dynamodb", endpoint_url=moto_endpoint) as dynamodb,
    ):
        yield s3, dynamodb


async def make_table(dynamodb: Any, key: str = "pk") -> str:
    table = f"replay-{uuid.uuid4().hex[:10]}"
    await dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return table


async def scan_hash(dynamodb: Any, table: str) -> tuple[str, list[dict[str, Any]]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = await dynamodb.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    items.sort(key=lambda item: json.dumps(item, sort_keys=True))
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest(), items


async def archive(s3: Any, lines: list[bytes]) -> tuple[str, str]:
    bucket = f"archive-{uuid.uuid4().hex[:10]}"
    await s3.create_bucket(Bucket=bucket)
    await s3.put_object(Bucket=bucket, Key="2024/05/01/part-0", Body=b"".join(lines[:30]))
    await s3.put_object(Bucket=bucket, Key="2024/05/01/part-1", Body=b"".join(lines[30:]))
    return bucket, "2024/"


async def test_replaying_the_archive_twice_leaves_the_same_table(
    clients: tuple[Any, Any], tmp_path: Path
) -> None:
    s3, dynamodb = clients
    good = [record(i, json.dumps({"device": f"d{i % 7}", "temp": i}).encode()) for i in range(1, 60)]
    poison = record(60, b"\x00 not json")
    bucket, prefix = await archive(s3, [encode_line(r) for r in [*good, poison]])
    table = await make_table(dynamodb)
    dead = FileDeadLetter(tmp_path / "dlq.jsonl")

    async def run(namespace_store: MemoryCheckpointStore) -> Any:
        sink = DynamoDBSink(table, client=dynamodb)
        reader = S3ArchiveReader(s3, bucket, prefix)
        return await ReplayJob(reader, sink, namespace_store, dead_letter=dead).run()

    first = await run(MemoryCheckpointStore())
    once, items = await scan_hash(dynamodb, table)
    second = await run(MemoryCheckpointStore())
    twice, _ = await scan_hash(dynamodb, table)

    assert once == twice
    assert len(items) == len(good)
    assert (first.read, first.written, first.dead_lettered) == (60, 59, 1)
    assert second.read == 60
    (line,) = (tmp_path / "dlq.jsonl").read_bytes().splitlines()
    entry = json.loads(line)
    assert entry["error_type"] == "SerializationError"
    assert entry["position"]["sequence_number"] == "60"


async def test_a_rerun_with_the_same_checkpoints_skips_finished_partitions(clients: tuple[Any, Any]) -> None:
    s3, dynamodb = clients
    good = [record(i, json.dumps({"temp": i}).encode()) for i in range(1, 41)]
    bucket, prefix = await archive(s3, [encode_line(r) for r in good])
    table = await make_table(dynamodb)
    store = MemoryCheckpointStore()
    sink = DynamoDBSink(table, client=dynamodb)
    await ReplayJob(S3ArchiveReader(s3, bucket, prefix), sink, store).run()
    again = await ReplayJob(S3ArchiveReader(s3, bucket, prefix), sink, store).run()
    assert (again.partitions, again.partitions_skipped, again.read) == (2, 2, 0)


async def test_guarded_backfill_does_not_regress_newer_items(clients: tuple[Any, Any]) -> None:
    s3, dynamodb = clients
    table = await make_table(dynamodb, key="device")
    mapping = FieldMapping(keys=("device",))
    live = DynamoDBSink(table, client=dynamodb, guarded=True, mapping=mapping)
    await live.write(
        [record(100 + i, json.dumps({"device": f"d{i}", "temp": 1000 + i}).encode()) for i in range(5)]
    )
    older = [record(10 + i, json.dumps({"device": f"d{i}", "temp": i}).encode()) for i in range(8)]
    bucket, prefix = await archive(s3, [encode_line(r) for r in older])
    backfill = DynamoDBSink(table, client=dynamodb, guarded=True, mapping=mapping)
    summary = await ReplayJob(S3ArchiveReader(s3, bucket, prefix), backfill, MemoryCheckpointStore()).run()
    _, items = await scan_hash(dynamodb, table)
    temps = {item["device"]["S"]: int(item["temp"]["N"]) for item in items}
    assert temps == {**{f"d{i}": 1000 + i for i in range(5)}, "d5": 5, "d6": 6, "d7": 7}
    assert (summary.duplicates, summary.written) == (5, 3)
