"""``shardline produce`` and ``shardline tail`` round-trip 10,000 records, in real processes.

Kinesis through kinesis-mock (two shards, KPL aggregation, keys from an NDJSON field): tail
de-aggregates every record, in per-key order, with sub-sequence numbers, and stops at the
tip.  Kafka through Tansu (three partitions): the same round trip, without joining a group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.kafka_topics import new_topic

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RECORDS = 10_000
DEVICES = 50


def _shardline(*argv: str, env: dict[str, str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "shardline.cli", *argv],
        input=stdin,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        timeout=180,
        check=False,
    )


def _ndjson() -> bytes:
    lines = [json.dumps({"id": i, "device": f"dev-{i % DEVICES}", "t": 20.5}) for i in range(RECORDS)]
    return ("\n".join(lines) + "\n").encode()


def _check_round_trip(rows: list[dict[str, Any]]) -> None:
    values = [json.loads(row["payload"]) for row in rows]
    assert sorted(value["id"] for value in values) == list(range(RECORDS))
    per_key: dict[str, list[int]] = defaultdict(list)
    for row, value in zip(rows, values, strict=True):
        assert row["key"] == value["device"] and row["encoding"] == "utf-8"
        per_key[row["key"]].append(value["id"])
    for ids in per_key.values():
        assert ids == sorted(ids)  # each key's records in the order they were produced


def test_kinesis_round_trip_through_kinesis_mock(kinesis_endpoint: str) -> None:
    stream = f"tail-{uuid.uuid4().hex[:10]}"
    kinesis = boto3.client("kinesis", endpoint_url=kinesis_endpoint)
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    env = {"AWS_ENDPOINT_URL_KINESIS": kinesis_endpoint}

    ndjson_by_device = ("--format", "ndjson", "--key", "field:device")
    produced = _shardline("produce", f"kinesis://{stream}", *ndjson_by_device, env=env, stdin=_ndjson())
    assert produced.returncode == 0, produced.stderr.decode()[-2000:]
    assert f"{RECORDS} sent, {RECORDS} acknowledged, 0 failed" in produced.stderr.decode()

    tailed = _shardline("tail", f"kinesis://{stream}", "--start", "trim_horizon", "--until-tip", env=env)
    assert tailed.returncode == 0, tailed.stderr.decode()[-2000:]
    rows = [json.loads(line) for line in tailed.stdout.splitlines()]
    _check_round_trip(rows)
    assert {row["shard"] for row in rows} == {"shardId-000000000000", "shardId-000000000001"}
    assert max(row["sub_sequence"] for row in rows) > 0  # read back out of KPL aggregates
    assert "Traceback" not in tailed.stderr.decode()

    piped = subprocess.Popen(  # `shardline tail ... | head -n 3`
        [sys.executable, "-m", "shardline.cli", "tail", f"kinesis://{stream}", "--start", "trim_horizon"],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert piped.stdout is not None and piped.stderr is not None
    for _ in range(3):
        assert json.loads(piped.stdout.readline())["key"].startswith("dev-")
    piped.stdout.close()  # the reader went away
    assert piped.wait(timeout=60) == 0
    assert b"Traceback" not in piped.stderr.read()

    some = _shardline(
        "tail", f"kinesis://{stream}", "--start", "trim_horizon", "--key", "dev-7", "-n", "5",
        "--format", "text", env=env,
    )  # fmt: skip
    assert some.returncode == 0, some.stderr.decode()
    lines = some.stdout.decode().splitlines()
    assert len(lines) == 5 and all("key=dev-7 " in line for line in lines)
    assert [json.loads(line.split("  ")[-1])["id"] for line in lines] == [7, 57, 107, 157, 207]


def test_kafka_round_trip_through_tansu(kafka_bootstrap: str) -> None:
    topic = new_topic(kafka_bootstrap, 3, prefix="tail")
    uri = f"kafka://{kafka_bootstrap}/{topic}"

    produced = _shardline("produce", uri, "--format", "ndjson", "--key", "field:device", "--acks", env={},
                          stdin=_ndjson())  # fmt: skip
    assert produced.returncode == 0, produced.stderr.decode()[-2000:]
    acks = [json.loads(line) for line in produced.stdout.splitlines()]
    assert len(acks) == RECORDS and {ack["partition"] for ack in acks} == {0, 1, 2}
    assert sorted(ack["line"] for ack in acks) == list(range(1, RECORDS + 1))

    tailed = _shardline("tail", uri, "--start", "trim_horizon", "--until-tip", env={})
    assert tailed.returncode == 0, tailed.stderr.decode()[-2000:]
    _check_round_trip([json.loads(line) for line in tailed.stdout.splitlines()])


def test_tail_follows_a_split_parent_first_and_stops_on_ctrl_c(kinesis_endpoint: str) -> None:
    stream = f"split-{uuid.uuid4().hex[:10]}"
    kinesis = boto3.client("kinesis", endpoint_url=kinesis_endpoint)
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    waiter = kinesis.get_waiter("stream_exists")
    waiter.wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    for n in range(20):
        kinesis.put_record(StreamName=stream, Data=f"{n}".encode(), PartitionKey="dev")
    kinesis.update_shard_count(StreamName=stream, TargetShardCount=2, ScalingType="UNIFORM_SCALING")
    waiter.wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    for n in range(20, 40):
        kinesis.put_record(StreamName=stream, Data=f"{n}".encode(), PartitionKey="dev")
    env = {"AWS_ENDPOINT_URL_KINESIS": kinesis_endpoint}

    tailed = _shardline("tail", f"kinesis://{stream}", "--start", "trim_horizon", "--until-tip", env=env)
    assert tailed.returncode == 0, tailed.stderr.decode()
    rows = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert [int(row["payload"]) for row in rows] == list(range(40))  # the parent's records first
    assert rows[0]["shard"] != rows[-1]["shard"]

    follower = subprocess.Popen(
        [sys.executable, "-m", "shardline.cli", "tail", f"kinesis://{stream}", "--start", "trim_horizon"],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert follower.stdout is not None
    for _ in range(40):  # every record printed: the follower now waits at the tip
        assert follower.stdout.readline()
    follower.send_signal(signal.SIGINT)
    _out, err = follower.communicate(timeout=30)
    assert follower.returncode == 130
    assert err.decode().strip() == "shardline tail: 40 record(s)"
