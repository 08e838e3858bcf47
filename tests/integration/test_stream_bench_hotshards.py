"""``stream-bench hotshards`` over the wire: a planted hot key is named on the shard its MD5 maps to."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from benchmarks.cli import main
from shardline.shardmath import ShardMap

pytestmark = pytest.mark.integration

HOT_KEY = "device-hot-0042"


def _create_stream(client: Any, shards: int) -> str:
    name = f"hotshards-{uuid.uuid4().hex[:12]}"
    client.create_stream(StreamName=name, ShardCount=shards)
    deadline = time.monotonic() + 60
    while (
        client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
        != "ACTIVE"
    ):
        assert time.monotonic() < deadline, "stream never became ACTIVE"
        time.sleep(0.1)  # the server gives no signal; bounded poll
    return name


def _put_all(client: Any, stream: str, keys: list[str]) -> None:
    pending = list(keys)
    while pending:
        chunk, pending = pending[:500], pending[500:]
        response = client.put_records(
            StreamName=stream, Records=[{"PartitionKey": key, "Data": b"x" * 200} for key in chunk]
        )
        pending += [key for key, r in zip(chunk, response["Records"], strict=True) if "ErrorCode" in r]


def test_planted_hot_key_is_reported_on_its_md5_shard(moto_endpoint: str, tmp_path: Path) -> None:
    client = boto3.client("kinesis", endpoint_url=moto_endpoint, region_name="us-east-1")
    stream = _create_stream(client, 4)
    shard_map = ShardMap.from_api(client.list_shards(StreamName=stream)["Shards"])
    expected_shard = shard_map.shard_for_key(HOT_KEY).shard_id
    keys = [HOT_KEY if i % 5 else f"device-{i:05d}" for i in range(1500)]  # the hot key: 80% of records
    _put_all(client, stream, keys)

    out = tmp_path / "hotshards.json"
    code = main(
        [
            "hotshards",
            "--stream",
            stream,
            "--duration",
            "120",
            "--from-trim-horizon",
            "--until-caught-up",
            "--endpoint",
            moto_endpoint,
            "--json",
            str(out),
        ]
    )
    assert code == 0
    analysis = json.loads(out.read_text())
    assert analysis["stream"] == stream and analysis["reader"] == "polling"
    assert sum(s["records_total"] for s in analysis["shards"].values()) == 1500
    hot = {h["shard_id"]: h for h in analysis["hot_shards"]}
    assert expected_shard in hot
    assert hot[expected_shard]["top_keys"][0]["key"] == HOT_KEY
    assert hot[expected_shard]["top_keys"][0]["count"] == 1200
    assert HOT_KEY in hot[expected_shard]["recommendation"]
