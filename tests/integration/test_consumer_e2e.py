"""``shardline consume`` as a real process over the wire: kinesis-mock for Kinesis, moto for
the DynamoDB lease table, an idempotent JSON-lines file sink.

RELIABILITY row 1: kill -9 between a sink write and its checkpoint, restart -> nothing lost,
the sink holds no duplicates, and the redelivered records are only those written after the
last checkpoint.  Row 3: SIGTERM drains, checkpoints and exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration.consume_process import sink_lines, stop_process, wait_until

pytestmark = pytest.mark.integration

RECORDS = 60
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def stream(kinesis_endpoint: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A 2-shard stream holding RECORDS records; yields (name, {event id: shard})."""
    client: Any = boto3.client("kinesis", endpoint_url=kinesis_endpoint, region_name="us-east-1")
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    client.create_stream(StreamName=name, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    placed: dict[str, str] = {}
    entries = [
        {"Data": json.dumps({"id": f"r{index}"}).encode(), "PartitionKey": f"device-{index % 7}"}
        for index in range(RECORDS)
    ]
    for start in range(0, RECORDS, 20):
        response = client.put_records(StreamName=name, Records=entries[start : start + 20])
        assert response.get("FailedRecordCount", 0) == 0
        for offset, result in enumerate(response["Records"]):
            placed[f"r{start + offset}"] = result["ShardId"]
    yield name, placed
    client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


def _spawn(
    stream: str,
    table: str,
    sink: Path,
    kinesis_endpoint: str,
    moto_endpoint: str,
    *,
    kill_after_sink_writes: int | None = None,
    owner: str = "e2e-worker",
) -> subprocess.Popen[bytes]:
    """``shardline consume``; with ``kill_after_sink_writes`` the test wrapper that SIGKILLs it
    right after that many sink writes (the production command has no such seam).

    Every process runs under one ``--owner``, as a supervisor restarts the same worker: the
    restarted one takes its predecessor's leases at once instead of after their expiry."""
    environment = dict(os.environ)
    environment.update(
        AWS_ENDPOINT_URL_KINESIS=kinesis_endpoint,
        AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint,
        AWS_DEFAULT_REGION="us-east-1",
    )
    command = (
        [sys.executable, "-m", "shardline.cli"]
        if kill_after_sink_writes is None
        else [
            sys.executable,
            "-m",
            "tests.integration.consume_killed_after_sink_writes",
            str(kill_after_sink_writes),
        ]
    )
    return subprocess.Popen(
        [
            *command,
            "consume",
            f"kinesis://{stream}",
            "--checkpoint",
            f"dynamodb://{table}?create_table=true",
            "--sink",
            f"file://{sink}",
            "--checkpoint-interval",
            "0.2",
            "--max-in-flight",
            "10",
            "--owner",
            owner,
        ],
        env=environment,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _leases(moto_endpoint: str, table: str) -> dict[str, str | None]:
    """Each shard's checkpoint; ``None`` while it holds only the KCL's initial-position sentinel."""
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    checkpoints = {item["leaseKey"]["S"]: item["checkpoint"]["S"] for item in items}
    return {
        shard: None if checkpoint in ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP") else checkpoint
        for shard, checkpoint in checkpoints.items()
    }


def _ids(lines: list[dict[str, Any]]) -> list[str]:
    import base64

    return [json.loads(base64.b64decode(line["data"]))["id"] for line in lines]


def test_kill_9_between_sink_write_and_checkpoint_loses_nothing(
    stream: tuple[str, dict[str, str]], kinesis_endpoint: str, moto_endpoint: str, tmp_path: Path
) -> None:
    name, placed = stream
    table = f"leases-{uuid.uuid4().hex[:10]}"
    sink = tmp_path / "out.jsonl"

    crashed = _spawn(name, table, sink, kinesis_endpoint, moto_endpoint, kill_after_sink_writes=2)
    status, stderr = stop_process(crashed, terminate=False, timeout=180)
    assert status == -signal.SIGKILL, stderr
    written_before = _ids(sink_lines(sink))
    assert written_before, "the crashed consumer wrote before dying"
    checkpoints_at_crash = _leases(moto_endpoint, table)
    # at-least-once at the moment of the crash: every record a checkpoint covers is in the sink
    stream_client: Any = boto3.client("kinesis", endpoint_url=kinesis_endpoint, region_name="us-east-1")
    for shard, checkpoint in checkpoints_at_crash.items():
        if checkpoint is None:
            continue
        iterator = stream_client.get_shard_iterator(
            StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        in_stream = stream_client.get_records(ShardIterator=iterator, Limit=1000)["Records"]
        covered = {
            json.loads(r["Data"])["id"]
            for r in in_stream
            if checkpoint == "SHARD_END" or int(r["SequenceNumber"]) <= int(checkpoint)
        }
        assert covered <= set(written_before)

    # records in the sink but not covered by a checkpoint are the ones to be redelivered
    sequence_of = {line_id: line for line_id, line in zip(written_before, sink_lines(sink), strict=True)}
    redelivered = [
        record_id
        for record_id, line in sequence_of.items()
        if not _covered(line["position"], checkpoints_at_crash.get(placed[record_id]))
    ]

    restarted = _spawn(name, table, sink, kinesis_endpoint, moto_endpoint)
    try:
        wait_until(lambda: len(sink_lines(sink)) >= RECORDS, "every record in the sink")
        wait_until(
            lambda: all(_leases(moto_endpoint, table).get(shard) for shard in set(placed.values())),
            "checkpoints of every shard",
        )
    finally:
        status, stderr = stop_process(restarted)
    assert status == 0, stderr

    ids = _ids(sink_lines(sink))
    assert sorted(ids) == sorted(placed)  # 0 lost
    assert len(ids) == len(set(ids))  # 0 sink duplicates (idempotent by record identity)
    # redeliveries are bounded by what was written after the last checkpoint (at most one
    # checkpoint interval of work): never a record a checkpoint already covered
    assert len(redelivered) <= len(written_before)
    assert "BAD" not in stderr and '"data"' not in stderr  # logs carry no payloads


def _covered(position: dict[str, Any], checkpoint: str | None) -> bool:
    if checkpoint is None:
        return False
    if checkpoint == "SHARD_END":
        return True
    return int(position["sequence_number"]) <= int(checkpoint)


def test_sigterm_drains_checkpoints_and_exits_zero(
    stream: tuple[str, dict[str, str]], kinesis_endpoint: str, moto_endpoint: str, tmp_path: Path
) -> None:
    name, _ = stream
    table = f"leases-{uuid.uuid4().hex[:10]}"
    sink = tmp_path / "out.jsonl"
    process = _spawn(name, table, sink, kinesis_endpoint, moto_endpoint)
    try:
        wait_until(lambda: len(sink_lines(sink)) >= RECORDS, "every record in the sink")
    finally:
        status, stderr = stop_process(process)
    assert status == 0, stderr
    lines = sink_lines(sink)
    last_per_shard: dict[str, int] = {}
    for line in lines:
        shard = line["position"]["shard_id"]
        last_per_shard[shard] = max(last_per_shard.get(shard, 0), int(line["position"]["sequence_number"]))
    leases = _leases(moto_endpoint, table)
    for shard, last in last_per_shard.items():
        checkpoint = leases.get(shard)
        assert checkpoint is not None
        assert int(checkpoint) == last  # the shutdown checkpoint covers everything written
    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(entry["message"] == "consumer stopped" and entry["exit_status"] == 0 for entry in logs)
