"""Enhanced fan-out over the wire on kinesis-mock: ``hotshards --consumer efo`` and ``run --consumer both``.

kinesis-mock's event stream lacks AWS's initial-response event; the test process tolerates that
(``efo_compat``), shipped code does not.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from benchmarks.cli import main
from benchmarks.result import validate_result
from shardline.shardmath import ShardMap
from tests.integration.efo_compat import tolerate_missing_initial_response
from tests.integration.test_stream_bench_hotshards import HOT_KEY, _create_stream, _put_all

pytestmark = pytest.mark.integration


def test_hotshards_through_enhanced_fan_out_names_the_planted_hot_key(
    kinesis_endpoint: str, tmp_path: Path
) -> None:
    client = boto3.client("kinesis", endpoint_url=kinesis_endpoint, region_name="us-east-1")
    stream = _create_stream(client, 2)
    shard_map = ShardMap.from_api(client.list_shards(StreamName=stream)["Shards"])
    expected_shard = shard_map.shard_for_key(HOT_KEY).shard_id
    keys = [HOT_KEY if i % 4 else f"device-{i:05d}" for i in range(400)]  # the hot key: 75%
    _put_all(client, stream, keys)
    out = tmp_path / "hotshards.json"
    with tolerate_missing_initial_response():
        code = main(
            [
                "hotshards",
                "--stream",
                stream,
                "--consumer",
                "efo",
                "--from-trim-horizon",
                "--duration",
                "6",
                "--endpoint",
                kinesis_endpoint,
                "--json",
                str(out),
            ]
        )
    assert code == 0
    analysis = json.loads(out.read_text())
    assert analysis["reader"] == "efo"
    assert sum(s["records_total"] for s in analysis["shards"].values()) == 400  # every record pushed
    hot = {h["shard_id"]: h for h in analysis["hot_shards"]}
    assert hot[expected_shard]["top_keys"][0] == {
        "key": HOT_KEY,
        "count": 300,
        "error": 0,
        "share_of_shard": hot[expected_shard]["top_keys"][0]["share_of_shard"],
    }
    consumers = client.list_stream_consumers(
        StreamARN=client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    )["Consumers"]
    assert all(c["ConsumerStatus"] != "ACTIVE" for c in consumers)  # the scan's consumer was deregistered


def test_run_with_both_consumers_reports_polling_and_efo_latency(
    kinesis_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", kinesis_endpoint)
    with tolerate_missing_initial_response():
        code = main(
            [
                "run",
                "--target",
                "kinesis",
                "--consumer",
                "both",
                "--duration",
                "3",
                "--rate",
                "100",
                "--shards",
                "2",
                "--out",
                str(tmp_path),
            ]
        )
    assert code == 0
    result = json.loads((tmp_path / "result.json").read_text())
    validate_result(result)
    summary = result["summary"]
    assert summary["records_acked"] == 300
    assert summary["consumer_records"] == 300  # the polling readers' count
    by_consumer = summary["end_to_end_ms_by_consumer"]
    assert by_consumer["polling"]["count"] == 300
    assert by_consumer["efo"]["count"] == 300  # the fan-out readers saw every record too
    html = (tmp_path / "report.html").read_text()
    assert "enhanced fan-out (EFO) reader" in html and "GetRecords polling reader" in html
