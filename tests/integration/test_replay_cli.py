"""``shardline replay`` end to end: a real subprocess against moto (and Tansu), as an operator runs it.

AWS clients are pointed at moto through the standard ``AWS_ENDPOINT_URL`` variable only.
Progress goes to stderr, the summary to stdout, exit status 0; bad arguments exit 2 with a
clear message and without touching the network.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiobotocore.session import get_session

from consumers.sinks.firehose import encode_line
from shardline.records import ConsumedRecord, KinesisPosition
from tests.integration.sink_readback import dynamodb_state
from tests.kafka_topics import new_topic

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def shardline(*args: str, cwd: Path, endpoint: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "shardline.cli", "replay", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture
async def aws(moto_endpoint: str) -> AsyncIterator[dict[str, Any]]:
    session = get_session()
    async with (
        session.create_client("s3", endpoint_url=moto_endpoint) as s3,
        session.create_client("dynamodb", endpoint_url=moto_endpoint) as dynamodb,
    ):
        yield {"s3": s3, "dynamodb": dynamodb}


async def test_backfill_from_an_s3_archive_into_dynamodb(
    aws: dict[str, Any], moto_endpoint: str, tmp_path: Path
) -> None:
    bucket, table = f"cli-{uuid.uuid4().hex[:12]}", f"cli-{uuid.uuid4().hex[:12]}"
    await aws["s3"].create_bucket(Bucket=bucket)
    lines = [
        encode_line(
            ConsumedRecord(
                json.dumps({"device": f"d{i}", "temp": i}).encode(),
                "k",
                KinesisPosition("telemetry", "shardId-000000000000", str(i)),
            )
        )
        for i in range(1, 41)
    ]
    await aws["s3"].put_object(Bucket=bucket, Key="raw/2024/a", Body=b"".join(lines[:25]))
    await aws["s3"].put_object(Bucket=bucket, Key="raw/2024/b", Body=b"".join(lines[25:]))
    await aws["dynamodb"].create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    args = (f"s3://{bucket}/raw/", "--name", "backfill", "--sink", f"dynamodb://{table}")

    first = shardline(*args, cwd=tmp_path, endpoint=moto_endpoint)
    once, items = await dynamodb_state(aws["dynamodb"], table)
    rerun = shardline(*args, cwd=tmp_path, endpoint=moto_endpoint)  # same checkpoints: nothing to do
    fresh = shardline(*args, "--checkpoint", str(tmp_path / "other.db"), cwd=tmp_path, endpoint=moto_endpoint)
    twice, _ = await dynamodb_state(aws["dynamodb"], table)

    assert first.returncode == 0, first.stderr
    assert "records read: 40" in first.stdout and "written: 40" in first.stdout
    assert "replay backfill: done, 40 records from 2 partition(s)" in first.stderr
    assert (tmp_path / "replay-backfill.db").exists()
    assert rerun.returncode == 0 and "partitions: 2 (2 already complete)" in rerun.stdout
    assert fresh.returncode == 0 and "skipped as duplicates: 0" in fresh.stdout
    assert once == twice and len(items) == 40


def test_a_kinesis_sequence_range_into_a_file_sink(moto_endpoint: str, tmp_path: Path) -> None:
    kinesis = boto3.client("kinesis", endpoint_url=moto_endpoint)
    stream = f"cli-{uuid.uuid4().hex[:12]}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    response = kinesis.put_records(
        StreamName=stream, Records=[{"Data": f"r{i}".encode(), "PartitionKey": "k"} for i in range(30)]
    )
    sequences = [entry["SequenceNumber"] for entry in response["Records"]]
    shard = response["Records"][0]["ShardId"]
    out = tmp_path / "out.jsonl"

    result = shardline(
        f"kinesis://{stream}", "--name", "seq", "--sink", f"file://{out}", "--shard", shard,
        "--from-sequence", sequences[10], "--to-sequence", sequences[19], "--max-calls-per-second", "5",
        cwd=tmp_path, endpoint=moto_endpoint,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "records read: 10" in result.stdout
    payloads = [base64.b64decode(json.loads(line)["data"]) for line in out.read_bytes().splitlines()]
    assert payloads == [f"r{i}".encode() for i in range(10, 20)]
    kinesis.close()


def test_a_kafka_offset_range_covers_every_partition(kafka_bootstrap: str, tmp_path: Path) -> None:
    from confluent_kafka import Producer

    topic = new_topic(kafka_bootstrap, 3, prefix="cli")
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for partition in range(3):
        for n in range(20):
            producer.produce(topic, f"p{partition}-m{n}".encode(), partition=partition)
    assert producer.flush(30) == 0
    out = tmp_path / "out.jsonl"

    result = shardline(
        f"kafka://{kafka_bootstrap}/{topic}", "--name", "kafka", "--sink", f"file://{out}",
        "--from-offset", "4", "--to-offset", "9",
        cwd=tmp_path, endpoint="http://127.0.0.1:9",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "records read: 15" in result.stdout
    payloads = sorted(base64.b64decode(json.loads(line)["data"]) for line in out.read_bytes().splitlines())
    assert payloads == sorted(f"p{p}-m{n}".encode() for p in range(3) for n in range(4, 9))


def test_a_missing_source_or_sink_is_one_line_naming_it(moto_endpoint: str, tmp_path: Path) -> None:
    missing = f"absent-{uuid.uuid4().hex[:8]}"
    for args in (
        (f"kinesis://{missing}", "--name", "n", "--sink", f"file://{tmp_path}/o.jsonl"),
        (f"s3://{missing}/raw/", "--name", "n", "--sink", f"file://{tmp_path}/o.jsonl"),
    ):
        named = "the SOURCE argument"
        result = shardline(*args, cwd=tmp_path, endpoint=moto_endpoint)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and missing in lines[0] and named in lines[0], result.stderr
    bucket = f"present-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    result = shardline(
        f"s3://{bucket}/raw/", "--name", "n", "--sink", f"dynamodb://{missing}",
        cwd=tmp_path, endpoint=moto_endpoint,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and f"DynamoDB table '{missing}' (named by --sink)" in result.stderr


def test_plan_names_a_missing_source_in_one_line(moto_endpoint: str, tmp_path: Path) -> None:
    # `replay plan` listed the source without looking it up first: exit 1 and
    # "ResourceNotFoundError: NoSuchBucket: The specified bucket does not exist", naming nothing
    missing = f"absent-{uuid.uuid4().hex[:8]}"
    checkpoint = ("--checkpoint", "dynamodb://replay", "--slices", "2", "--out", str(tmp_path / "plan.json"))
    # an archive is read whole; a stream is cut into windows from --from
    for source in ((f"s3://{missing}/raw/",), (f"kinesis://{missing}", "--from", "2024-05-01T00:00:00Z")):
        args = ("plan", *source, "--name", "n", "--sink", f"file://{tmp_path}/o.jsonl", *checkpoint)
        result = shardline(*args, cwd=tmp_path, endpoint=moto_endpoint)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and missing in lines[0] and "the SOURCE argument" in lines[0], result.stderr
        assert not (tmp_path / "plan.json").exists()


NAMED = ("--name", "n", "--sink", "file:///x")
KINESIS = ("kinesis://s",)
KAFKA = ("kafka://h:1/t",)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sink", "file:///x", *KINESIS], "--name"),
        ([*NAMED], "SOURCE"),
        ([*NAMED, "kinesis:/s"], "SOURCE must be"),
        ([*NAMED, "kafka://h:1/a,b"], "one topic"),
        ([*NAMED, *KINESIS, "--from-time", "2024-05-01"], "time zone"),
        (["--name", "n", "--sink", "nosuch://x", *KINESIS], "unknown sink scheme"),
        ([*NAMED, *KINESIS, "--from-sequence", "5"], "exactly one"),
        ([*NAMED, "s3:///prefix"], "s3://BUCKET/PREFIX"),
        ([*NAMED, *KINESIS, "--from-offset", "1"], "kafka:// SOURCE"),
        ([*NAMED, *KAFKA, "--from-offset", "9", "--to-offset", "3"], "from-offset <= to-offset"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message_before_any_network_call(
    args: list[str], message: str, tmp_path: Path
) -> None:
    # An endpoint nothing listens on: a network call would fail with a different error.
    result = shardline(*args, cwd=tmp_path, endpoint="http://127.0.0.1:9")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())  # not even the checkpoint file was created
