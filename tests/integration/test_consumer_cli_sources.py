"""``shardline consume`` end to end in a real process, fed by Shardline's own producers.

* Kinesis, polling and enhanced fan-out: KinesisProducer writes KPL aggregates with
  partition keys to kinesis-mock; the CLI consumes into an idempotent JSON-lines file with
  DynamoDB (moto) checkpoints.  Every record arrives exactly once, in per-key order within
  its shard, and the checkpoints carry sub-sequence numbers inside aggregates.
* Kafka: KafkaProducer writes keyed messages to Tansu; ``shardline consume kafka://...`` joins
  a group, writes every message once per key order, and commits the offsets.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiobotocore.session import get_session

from producers import KinesisProducer
from shardline.records import Record
from tests.integration.consume_process import sink_lines, stop_process, wait_until
from tests.kafka_topics import new_topic

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RECORDS = 300
KEYS = 7


def _spawn(module: str, argv: list[str], **env: str) -> subprocess.Popen[bytes]:
    environment = dict(os.environ)
    environment.update(AWS_DEFAULT_REGION="us-east-1", **env)
    return subprocess.Popen(
        [sys.executable, "-m", module, "consume", *argv],
        cwd=REPO,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _consume_all(process: subprocess.Popen[bytes], sink: Path) -> tuple[str, list[dict[str, Any]]]:
    """Wait until the sink holds every record, stop the consumer with SIGTERM: it must exit 0."""
    try:
        wait_until(lambda: len(sink_lines(sink)) >= RECORDS, "every record in the sink")
    finally:
        status, stderr = stop_process(process)
    assert status == 0, stderr[-3000:]
    return stderr, sink_lines(sink)


def _payloads() -> list[Record]:
    """Unique ids; ``n`` counts each key's records so per-key order can be checked."""
    per_key: dict[str, int] = defaultdict(int)
    records = []
    for index in range(RECORDS):
        key = f"device-{index % KEYS}"
        body = json.dumps({"id": index, "key": key, "n": per_key[key]}).encode()
        per_key[key] += 1
        records.append(Record(body, partition_key=key))
    return records


async def _produce_aggregated(stream: str, kinesis_endpoint: str) -> None:
    async with (
        get_session().create_client(
            "kinesis", endpoint_url=kinesis_endpoint, region_name="us-east-1"
        ) as client,
        KinesisProducer(
            stream, client=client, aggregate=True, rate_limit_percent=None, linger=0.05
        ) as producer,
    ):
        acks = await (await producer.send_many(_payloads()))
    assert acks.ok
    # aggregated: several user records share a Kinesis record (same sequence number)
    assert len({(ack.shard_id, ack.sequence_number) for ack in acks}) < RECORDS


def _create_stream(kinesis_endpoint: str, shards: int) -> str:
    client: Any = boto3.client("kinesis", endpoint_url=kinesis_endpoint, region_name="us-east-1")
    name = f"cli-{uuid.uuid4().hex[:10]}"
    client.create_stream(StreamName=name, ShardCount=shards)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return name


def _decoded(line: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(base64.b64decode(line["data"]))
    return body


def _assert_once_and_in_key_order(lines: list[dict[str, Any]], partition_field: str) -> None:
    ids = [_decoded(line)["id"] for line in lines]
    assert sorted(ids) == list(range(RECORDS))  # every record, none twice
    seen: dict[tuple[Any, str], list[int]] = defaultdict(list)
    for line in lines:
        body = _decoded(line)
        seen[(line["position"][partition_field], body["key"])].append(body["n"])
    for counters in seen.values():
        assert counters == sorted(counters)


def _leases(moto_endpoint: str, table: str) -> dict[str, tuple[str | None, int]]:
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return {
        item["leaseKey"]["S"]: (
            item.get("checkpoint", {}).get("S"),
            int(item.get("checkpointSubSequenceNumber", {}).get("N", "0")),
        )
        for item in items
    }


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["polling", "efo"])
async def test_producer_to_consume_cli_every_record_once_in_key_order(
    mode: str, kinesis_endpoint: str, moto_endpoint: str, tmp_path: Path
) -> None:
    stream = _create_stream(kinesis_endpoint, 2)
    await _produce_aggregated(stream, kinesis_endpoint)
    table = f"leases-{uuid.uuid4().hex[:10]}"
    sink = tmp_path / "out.jsonl"
    argv = [
        f"kinesis://{stream}",
        "--checkpoint",
        f"dynamodb://{table}?create_table=true",
        "--sink",
        f"file://{sink}",
        "--checkpoint-interval",
        "0.2",
        "--mode",
        mode,
    ]
    module = "shardline.cli"
    if mode == "efo":
        argv += ["--consumer-name", f"cli-{uuid.uuid4().hex[:8]}"]
        module = "tests.integration.efo_cli_runner"  # kinesis-mock needs the test-only adaptation
    process = _spawn(
        module, argv, AWS_ENDPOINT_URL_KINESIS=kinesis_endpoint, AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint
    )
    stderr, lines = _consume_all(process, sink)
    _assert_once_and_in_key_order(lines, "shard_id")
    # the shutdown checkpoint of each shard is its last record, sub-sequence included
    last: dict[str, tuple[int, int]] = {}
    for line in lines:
        position = line["position"]
        here = (int(position["sequence_number"]), int(position["sub_sequence_number"]))
        last[position["shard_id"]] = max(last.get(position["shard_id"], here), here)
    leases = _leases(moto_endpoint, table)
    for shard, (sequence, sub) in last.items():
        checkpoint, checkpoint_sub = leases[shard]
        assert checkpoint is not None
        assert (int(checkpoint), checkpoint_sub) == (sequence, sub)
    assert any(sub > 0 for _, sub in last.values())  # checkpoints inside aggregates
    assert '"data"' not in stderr  # logs carry no payloads


@pytest.mark.timeout(300)
async def test_kafka_uri_through_consume_cli_commits_what_it_wrote(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    from confluent_kafka import Consumer, TopicPartition

    from producers.kafka import KafkaProducer
    from shardline.kafka_config import KafkaClientConfig

    topic = new_topic(kafka_bootstrap, 3, prefix="cli")
    async with KafkaProducer(topic, KafkaClientConfig(kafka_bootstrap)) as producer:
        deliveries = [await producer.send(record.data, record.partition_key) for record in _payloads()]
        for delivery in deliveries:
            await delivery
    group = f"g-{uuid.uuid4().hex[:8]}"
    sink = tmp_path / "kafka.jsonl"
    process = _spawn(
        "shardline.cli",
        [
            f"kafka://{kafka_bootstrap}/{topic}?group={group}&session_timeout_ms=6000",
            "--sink",
            f"file://{sink}",
            "--checkpoint-interval",
            "0.2",
        ],
    )
    _, lines = _consume_all(process, sink)
    _assert_once_and_in_key_order(lines, "partition")
    written: dict[int, int] = defaultdict(int)
    for line in lines:
        written[int(line["position"]["partition"])] += 1
    checker = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    try:
        committed = checker.committed([TopicPartition(topic, p) for p in range(3)], timeout=30)
    finally:
        checker.close()
    # the group's committed offsets cover exactly what reached the sink: a restart resumes there
    assert {tp.partition: tp.offset for tp in committed} == {p: written.get(p, 0) for p in range(3)}
