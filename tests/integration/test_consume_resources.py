"""``shardline consume`` against an account that has only the stream and the sink.

* The DynamoDB lease table is created on first start, as the KCL does: on-demand billing,
  point-in-time recovery; ``?create_table=false`` refuses to start without it.
* A missing stream, sink table, Kafka topic or dead-letter bucket is one line naming the
  resource and the option that named it, exit status 2, before anything is read.

Everything runs in a real process against moto (and Tansu) through the standard
``AWS_ENDPOINT_URL`` variable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest

from tests.integration.consume_process import sink_lines, stop_process, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _env(endpoint: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SHARDLINE_FAULT_KILL_AFTER_SINK_WRITES", None)
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_DEFAULT_REGION="us-east-1", PYTHONPATH=str(REPO))
    return env


def _consume(*argv: str, endpoint: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shardline.cli", "consume", *argv],
        cwd=cwd,
        env=_env(endpoint),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _stream(endpoint: str) -> str:
    kinesis = boto3.client("kinesis", endpoint_url=endpoint)
    name = f"res-{uuid.uuid4().hex[:10]}"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    records = [{"Data": b"x%d" % i, "PartitionKey": "k"} for i in range(5)]
    kinesis.put_records(StreamName=name, Records=records)
    return name


def test_the_lease_table_is_created_like_the_kcl_does(moto_endpoint: str, tmp_path: Path) -> None:
    stream = _stream(moto_endpoint)
    table = f"leases-{uuid.uuid4().hex[:10]}"
    out = tmp_path / "out.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "shardline.cli", "consume", f"kinesis://{stream}",
         "--checkpoint", f"dynamodb://{table}", "--sink", f"file://{out}", "--checkpoint-interval", "0.5",
         "--progress-interval", "0.2"],
        cwd=tmp_path, env=_env(moto_endpoint), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_until(lambda: len(sink_lines(out)) >= 5, "every record in the sink", timeout=60)
    finally:
        status, stderr = stop_process(process)
    assert status == 0, stderr[-2000:]
    logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    caught_up = [entry for entry in logged if entry["message"] == "caught up"]
    assert [entry["partition"] for entry in caught_up] == ["shardId-000000000000"]
    progress = [entry for entry in logged if entry["message"] == "progress"]
    assert progress[-1]["records_in"] == 5 and progress[-1]["caught_up"] == 1  # the line at the stop
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    description = dynamodb.describe_table(TableName=table)["Table"]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    backups = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    assert dynamodb.scan(TableName=table)["Count"] == 1  # the shard's lease, checkpointed


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    message: str = json.loads(lines[0])["message"]
    return message


def test_missing_resources_are_named_with_their_option(moto_endpoint: str, tmp_path: Path) -> None:
    stream = _stream(moto_endpoint)
    missing = f"absent-{uuid.uuid4().hex[:8]}"
    sink = f"file://{tmp_path}/out.jsonl"
    checkpoint = f"sqlite:///{tmp_path}/leases.db"
    cases = [
        ((f"kinesis://{missing}", "--checkpoint", checkpoint, "--sink", sink),
         "Kinesis stream", "the SOURCE"),
        ((f"kinesis://{stream}", "--checkpoint", checkpoint, "--sink", f"dynamodb://{missing}"),
         "DynamoDB table", "--sink"),
        ((f"kinesis://{stream}", "--checkpoint", checkpoint, "--sink", f"firehose://{missing}"),
         "Firehose delivery stream", "--sink"),
        ((f"kinesis://{stream}", "--checkpoint", f"dynamodb://{missing}?create_table=false", "--sink", sink),
         "DynamoDB table", "--checkpoint"),
        ((f"kinesis://{stream}", "--checkpoint", checkpoint, "--sink", sink, "--dead-letter", f"s3://{missing}/dl/"),
         "S3 bucket", "--dead-letter"),
    ]  # fmt: skip
    for argv, kind, option in cases:
        message = _one_line(_consume(*argv, endpoint=moto_endpoint, cwd=tmp_path))
        assert f"{kind} '{missing}' (named by {option}" in message, message
    assert not (tmp_path / "out.jsonl").exists()  # nothing was read or written
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    assert missing not in dynamodb.list_tables()["TableNames"]  # create_table=false created nothing


def test_a_missing_kafka_topic_is_named(kafka_bootstrap: str, tmp_path: Path) -> None:
    missing = f"absent-{uuid.uuid4().hex[:8]}"
    result = _consume(
        f"kafka://{kafka_bootstrap}/{missing}?group=g", "--sink", f"file://{tmp_path}/out.jsonl",
        endpoint="http://127.0.0.1:9", cwd=tmp_path,
    )  # fmt: skip
    assert f"Kafka topic '{missing}' (named by the SOURCE argument)" in _one_line(result)
