"""``stream-bench peers``: Shardline and peer clients side by side, each in its own process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.cli import main

pytestmark = pytest.mark.integration


def _rows(path: Path) -> dict[str, dict[str, Any]]:
    document = json.loads((path / "peers.json").read_text())
    return {row["client"]: row for row in document["rows"]}


def test_kinesis_peers_on_a_kinesalite_the_command_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "peers",
            "--records",
            "2000",
            "--clients",
            "shardline-batch,boto3",
            "--client-timeout",
            "300",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    rows = _rows(tmp_path)
    assert set(rows) == {"shardline-batch", "boto3"}
    for row in rows.values():
        assert row["error"] is None, row
        assert row["records"] == 2000
        assert row["records_per_sec"] > 0 and row["cpu_us_per_record"] > 0
        assert row["raw"]["verified"] is True  # every record was read back from the stream
    assert rows["boto3"]["vs_best_peer_rate"] == 1.0  # the only peer is its own best
    assert rows["shardline-batch"]["vs_best_peer_rate"] > 0
    captured = capsys.readouterr()
    assert "starting a local kinesalite" in captured.err
    table = captured.out
    assert "shardline-batch" in table and "boto3" in table and "rate vs best peer" in table


def test_kafka_peers_on_the_local_broker(kafka_bootstrap: str, tmp_path: Path) -> None:
    code = main(
        [
            "peers",
            "--family",
            "kafka",
            "--bootstrap",
            kafka_bootstrap,
            "--records",
            "2000",
            "--clients",
            "shardline-send,confluent-kafka,confluent-kafka-aio,shardline-consumer,confluent-kafka-consumer",
            "--shards",
            "2",
            "--client-timeout",
            "300",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    rows = _rows(tmp_path)
    assert [rows[name]["role"] for name in ("shardline-send", "shardline-consumer")] == [
        "producer",
        "consumer",
    ]
    for row in rows.values():
        assert row["error"] is None, row
        assert row["records"] == 2000
        assert row["records_per_sec"] > 0 and row["cpu_us_per_record"] > 0
    assert rows["confluent-kafka"]["vs_best_peer_rate"] == 1.0
    assert rows["confluent-kafka-consumer"]["vs_best_peer_rate"] == 1.0
