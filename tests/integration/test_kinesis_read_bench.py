"""``python -m benchmarks.peers.kinesis_read``: both readers over the wire, on a tiny workload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.peers.kinesis_read import PEER, SHARDLINE, main

pytestmark = pytest.mark.integration


def test_both_readers_read_back_every_record_of_an_aggregated_fill(
    kinesis_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "read.json"
    code = main(
        [
            "--endpoint",
            kinesis_endpoint,
            "--records",
            "600",
            "--keys",
            "40",
            "--shards",
            "2",
            "--repeat",
            "1",
            "--consumer-work",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    document = json.loads(out.read_text())
    assert document["consumer_work"] is True
    runs = {run["reader"]: run for run in document["runs"]}
    assert set(runs) == {PEER, SHARDLINE}
    for run in runs.values():
        assert "error" not in run, run
        assert run["records"] == 600
        assert run["verified"] is True  # count, unique positions and the payload digest all match
        assert run["cpu_us_per_record"] > 0
    ratio = document["summary"]["aggregated"]["shardline_vs_peer_cpu"]
    shardline, peer = runs[SHARDLINE]["cpu_us_per_record"], runs[PEER]["cpu_us_per_record"]
    assert ratio["median"] == pytest.approx(shardline / peer)
    table = capsys.readouterr().out
    assert "| aggregated | shardline |" in table and "| aggregated | boto3-agg |" in table
