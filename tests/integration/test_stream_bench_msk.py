"""``stream-bench run --target msk`` end to end on the local Kafka-protocol broker (Tansu)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from benchmarks.cli import main
from benchmarks.result import validate_result
from benchmarks.run_msk import partition_label
from benchmarks.targets import BOOTSTRAP_ENV
from tests.kafka_partitioning import java_partition

pytestmark = pytest.mark.integration


def _msk_run(bootstrap: str, out: Path, *options: str) -> list[str]:
    """``stream-bench run --target msk`` against ``bootstrap``, writing to ``out``."""
    return ["run", "--target", "msk", "--bootstrap", bootstrap, *options, "--out", str(out)]


@pytest.mark.parametrize("generator", ["batch", "per-record"])
def test_msk_run_produces_a_valid_result_and_report(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], generator: str
) -> None:
    """Both generators: a tick's records in one send_many (the default), or a send() each."""
    code = main(
        _msk_run(
            kafka_bootstrap,
            tmp_path,
            "--duration",
            "5",
            "--rate",
            "400",
            "--shards",
            "3",
            "--generator",
            generator,
        )
    )
    assert code == 0
    result = json.loads((tmp_path / "result.json").read_text())
    validate_result(result)
    assert result["config"]["target"] == "msk" and result["config"]["aggregate"] is False
    assert result["config"]["generator"] == generator
    summary = result["summary"]
    assert summary["records_sent"] == 2000
    assert summary["records_acked"] == 2000 and summary["records_failed"] == 0
    assert summary["send_to_ack_ms"]["count"] == 2000
    assert summary["consumer_records"] == 2000  # the consumer-group member read every record back
    assert summary["end_to_end_ms"]["count"] == 2000
    # the clock started once the member had its partitions: no record waited for the group join
    assert not any("partitions assigned" in note for note in result["notes"])
    assert summary["emulator_cpu_seconds"] is None and "whole bench process" in summary["client_cpu_method"]
    assert sorted(result["shards"]) == ["partition-0000", "partition-0001", "partition-0002"]
    assert sum(s["records_total"] for s in result["shards"].values()) == 2000
    assert all(s["seconds_over_limit"] == 0 for s in result["shards"].values())
    assert result["timeline"]["iterator_age_ms"], "time behind the tip was recorded per partition"
    report = (tmp_path / "report.html").read_text()
    assert 'id="chart-heatmap"' in report and "Per-partition load" in report
    out = capsys.readouterr().out
    assert "bound by" in out and "HTML report:" in out


def test_single_device_makes_one_hot_partition_named_with_its_key(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BOOTSTRAP_ENV, kafka_bootstrap)  # no --bootstrap: the environment names the cluster
    code = main(
        [
            "run",
            "--target",
            "msk",
            "--duration",
            "2",
            "--rate",
            "300",
            "--keys",
            "1",
            "--shards",
            "4",
            "--consumer",
            "none",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    result = json.loads((tmp_path / "result.json").read_text())
    hot = result["hot_shards"]
    assert len(hot) == 1
    assert hot[0]["share"] == 1.0
    assert hot[0]["top_keys"][0]["key"] == "device-000000"
    # the partition the Java client's rule gives the key (the producer's default partitioner)
    assert hot[0]["shard_id"] == partition_label(java_partition(b"device-000000", 4))
    assert result["shards"][hot[0]["shard_id"]]["records_total"] == 600
    assert "partition" in hot[0]["recommendation"]


def test_a_run_stopped_while_its_member_joins_closes_the_member(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Joining the group is awaited before the clock starts; a run that ends there still
    stops and closes its consumer, which then leaves the group."""
    import benchmarks.run_msk
    from consumers.kafka import KafkaSource

    closed: list[bool] = []
    real_close = KafkaSource.close

    async def noting_close(self: KafkaSource, timeout: float | None = None) -> None:
        await real_close(self, timeout)
        closed.append(True)

    async def stopped_while_waiting(*_: object, **__: object) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("stopped while waiting")

    monkeypatch.setattr(KafkaSource, "close", noting_close)
    monkeypatch.setattr(benchmarks.run_msk, "start_when_positioned", stopped_while_waiting)
    with pytest.raises(RuntimeError, match="stopped while waiting"):
        main(_msk_run(kafka_bootstrap, tmp_path, "--duration", "2"))
    assert closed == [True]
