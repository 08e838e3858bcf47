"""Kafka partitions judged on skew only, the msk result and report, and the bound-by rules."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from benchmarks.recorder import Recorder
from benchmarks.report import print_summary, render_html
from benchmarks.result import bound_by, build_result, validate_result
from benchmarks.run import CPU_METHOD_PROCESS, CPU_METHOD_THREAD, RunOptions, RunOutcome
from benchmarks.run_msk import _consume, partition_label
from benchmarks.shardload import ShardLoadTracker, analyse_hot_shards
from benchmarks.workload import WorkloadSpec, encode_payload
from consumers.source import SourceBatch
from shardline.records import KafkaPosition


def _skewed_partitions() -> ShardLoadTracker:
    tracker = ShardLoadTracker([partition_label(p) for p in range(4)])
    for second in range(3):
        for _ in range(5000):  # far over any Kinesis shard quota: irrelevant for Kafka
            tracker.add(partition_label(2), second, "device-000000", 300)
        for p in (0, 1, 3):
            for i in range(100):
                tracker.add(partition_label(p), second, f"device-{p}{i:05d}", 300)
    return tracker


def test_kafka_partitions_are_judged_on_skew_not_quotas() -> None:
    analysis = analyse_hot_shards(_skewed_partitions(), kafka=True)
    assert [h["shard_id"] for h in analysis["hot_shards"]] == [partition_label(2)]
    hot = analysis["hot_shards"][0]
    assert hot["top_keys"][0]["key"] == "device-000000"
    assert hot["seconds_over_limit"] == 0
    assert "partition" in hot["recommendation"] and "SplitShard" not in hot["recommendation"]
    summaries = analysis["shards"].values()
    assert all(s["seconds_over_limit"] == 0 and s["peak_utilisation"] == 0 for s in summaries)
    assert analysis["reshard_to"] == 4  # no quota to size against: the current partition count


def test_same_load_on_kinesis_shards_is_over_the_limits() -> None:
    analysis = analyse_hot_shards(_skewed_partitions())
    assert analysis["shards"][partition_label(2)]["seconds_over_limit"] == 3


@pytest.fixture
def msk_outcome(outcome: RunOutcome) -> RunOutcome:
    recorder = Recorder([partition_label(p) for p in range(4)], 0.0)
    tracker = _skewed_partitions()
    recorder.load = tracker
    for second in range(3):
        for _ in range(500):
            recorder.sent[second] += 1
            recorder.on_ack(second, 300, 0.004)
    options = RunOptions(target="msk", aggregate=False, workload=WorkloadSpec(duration=3, rate=500))
    return replace(
        outcome,
        options=options,
        recorder=recorder,
        shard_ids=[partition_label(p) for p in range(4)],
        wall_seconds=3.2,
        emulator_in_process=False,
        client_cpu_method=CPU_METHOD_PROCESS,
    )


def test_msk_result_validates_and_the_report_speaks_of_partitions(
    msk_outcome: RunOutcome, capsys: pytest.CaptureFixture[str]
) -> None:
    result = build_result(msk_outcome)
    validate_result(result)
    assert result["config"]["target"] == "msk"
    assert result["summary"]["emulator_cpu_seconds"] is None
    assert result["summary"]["client_cpu_method"] == CPU_METHOD_PROCESS
    html = render_html(result)
    assert "Hot partitions" in html and "no per-partition quota" in html
    assert 'id="chart-heatmap"' in html and 'id="cpu-method"' in html
    print_summary(result)
    out = capsys.readouterr().out
    assert "hot partitions" in out and "how client CPU was measured" in out


def test_embedded_result_states_the_thread_cpu_method(outcome: RunOutcome) -> None:
    result = build_result(replace(outcome, client_cpu_method=CPU_METHOD_THREAD))
    assert "interpreter lock" in result["summary"]["client_cpu_method"]
    assert "interpreter lock" in render_html(result)


def test_child_process_emulator_cpu_is_reported_as_measured(outcome: RunOutcome) -> None:
    result = build_result(replace(outcome, emulator_in_process=False, emulator_cpu_seconds=4.5))
    assert result["summary"]["emulator_cpu_seconds"] == 4.5
    assert result["bound_by"]["signals"]["emulator_shares_process"] is False


def test_producer_rate_counts_the_acknowledgements_after_the_schedule(outcome: RunOutcome) -> None:
    outcome.recorder.last_ack_at = 10.0  # a 5 s schedule whose backlog drained until t=10 s
    result = build_result(replace(outcome, wall_seconds=10.5))
    assert result["summary"]["producing_seconds"] == 10.0
    assert result["summary"]["producer_records_per_sec"] == pytest.approx(2000 / 10.0)


COMMON: dict[str, Any] = {"records": 10_000, "client_cpu_share": 0.2, "emulator_cpu_share": 0.2}
UNBOUNDED: dict[str, Any] = {"rate": None, "achieved_rate": 3000, "throttles": 0, "seconds_over_limit": 0}


def test_unbounded_offered_load_over_a_limit_is_not_evidence_of_shard_limits() -> None:
    verdict = bound_by(rate=None, achieved_rate=3000, throttles=0, seconds_over_limit=20, **COMMON)
    assert verdict["verdict"] == "round trips"
    paced = bound_by(rate=5000, achieved_rate=3000, throttles=0, seconds_over_limit=20, **COMMON)
    assert paced["verdict"] == "shard limits"


def test_busiest_shard_at_its_limit_binds_an_unbounded_run() -> None:
    verdict = bound_by(busiest_shard_utilisation=0.97, **UNBOUNDED, **COMMON)
    assert verdict["verdict"] == "shard limits"
    assert "97%" in verdict["explanation"]


def test_emulator_verdict_depends_on_whether_it_shares_the_process() -> None:
    split: dict[str, Any] = {"records": 10_000, "client_cpu_share": 0.45, "emulator_cpu_share": 0.45}
    shared = bound_by(**UNBOUNDED, **split)
    assert shared["verdict"] == "emulator CPU"  # one interpreter lock: the shares add up
    alone = bound_by(emulator_shares_process=False, **UNBOUNDED, **split)
    assert alone["verdict"] == "round trips"
    busy_child: dict[str, Any] = dict(split, emulator_cpu_share=0.9)
    child = bound_by(emulator_shares_process=False, **UNBOUNDED, **busy_child)
    assert child["verdict"] == "emulator CPU"


def test_msk_consumer_counts_batches_in_bulk_and_measures_age_behind_the_tip() -> None:
    """The Kafka target's group member counts what it reads as the Kinesis readers do
    (benchmarks.readback.read_batch: deduplicated ids, end-to-end latency from the intended
    time, earlier traffic and foreign records skipped), and ages a partition by its batch's
    last bench record while newer acknowledged records exist."""
    origin_ns = time.time_ns() - int(time.monotonic() * 1e9)
    now_ns = origin_ns + int(time.monotonic() * 1e9)
    floor_ns = now_ns - 10_000_000_000

    def record(data: bytes, offset: int) -> SimpleNamespace:
        return SimpleNamespace(data=data, position=KafkaPosition("t", 1, offset))

    def bench(record_id: int, ago_s: float, fmt: str = "binary") -> bytes:
        return encode_payload(record_id, now_ns - int(ago_s * 1e9), "device-000001", 64, fmt)  # type: ignore[arg-type]

    batches = [
        SourceBatch(
            partition_label(1),
            [
                record(bench(1, 2.0), 10),
                record(b"not the bench's", 11),
                record(bench(2, 20.0), 12),  # before the run: skipped
                record(bench(3, 1.5, "json"), 13),
                record(b"trailing foreign record", 14),
            ],
        ),
        SourceBatch(partition_label(1), [record(bench(3, 1.5), 15), record(bench(4, 1.0), 16)]),
        SourceBatch(partition_label(1), []),
    ]

    class Source:
        async def batches(self) -> AsyncIterator[SourceBatch]:
            for batch in batches:
                yield batch

    recorder = Recorder([partition_label(p) for p in range(2)], time.monotonic() - 5.0)
    asyncio.run(_consume(Source(), recorder, {1: 16}, origin_ns, floor_ns))
    assert recorder.total_consumed == 3  # ids 1, 3, 4
    assert recorder.duplicates == 1
    summary = recorder.e2e_latency.summary_ms()
    assert summary["count"] == 3
    assert summary["p50"] >= 1_000 and summary["max"] < 5_000
    ages = recorder.iterator_age[partition_label(1)]
    # the first batch ends at offset 14 with offset 16 acknowledged: behind, aged by record 3
    # (1.5 s old; the trailing foreign record has no intended time); the second is at the tip
    assert ages and 1_400 <= max(ages.values()) < 5_000
