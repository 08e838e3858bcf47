"""Offered vs accepted load and polling vs EFO latency: in the result, and shown in headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from benchmarks.histogram import QUANTILES, LatencyHistogram
from benchmarks.merge import merge_partials, partial_from_outcome
from benchmarks.recorder import Recorder
from benchmarks.report import render_html, write_html
from benchmarks.result import build_result, validate_result
from benchmarks.run import RunOptions, RunOutcome
from benchmarks.workload import WorkloadSpec


def _outcome(worker_id: int = 0, workers: int = 1) -> RunOutcome:
    shard_ids = [f"shardId-{n:012d}" for n in range(worker_id, 4, workers)]
    recorder = Recorder(shard_ids, 100.0)
    for second in range(3):
        for shard in shard_ids:
            n = int(shard[-1])  # the shard's number in the whole stream
            offered = 100 * (n + 1)
            recorder.load.add_counts(shard, second, offered, offered * 200)
            recorder.load.keys(shard).add(f"device-{n}", offered)
            recorder.sent[second] += offered
            accepted = offered - 10 * n  # the busier shards took less than they were offered
            recorder.on_entries_acked(
                second, [(shard, range(accepted), 100.0 + second + 0.05)], [190] * accepted, 100.0 + second
            )
            ids = list(range(second * 10_000 + n * 1000, second * 10_000 + n * 1000 + accepted))
            recorder.on_consumed_many(second, ids, [200_000] * accepted)
            recorder.on_read_by("polling", ids, [200_000] * accepted)
            recorder.on_read_by("efo", ids, [70_000] * accepted)
    gateway = {
        shard: {
            "accepted_records": 1000,
            "accepted_bytes": 190_000,
            "throttled_records": 7 * n,
            "get_records_calls": 3,
            "get_records_throttled": 0,
        }
        for shard in shard_ids
        for n in [int(shard[-1])]
    }
    return RunOutcome(
        options=RunOptions(
            workload=WorkloadSpec(duration=3, rate=None),
            consumer="both",
            workers=workers,
            worker_id=worker_id,
        ),
        recorder=recorder,
        stream="bench-fidelity",
        shard_ids=shard_ids,
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        wall_seconds=3.5,
        client_cpu_seconds=1.0,
        process_cpu_seconds=1.0,
        emulator_in_process=False,
        gateway=gateway,
    )


def test_result_labels_offered_and_accepted_load_per_shard() -> None:
    result = build_result(_outcome())
    validate_result(result)
    table = result["offered_vs_accepted"]
    assert table["accepted_measured"] is True
    assert "intended send time" in table["labels"]["offered"]
    assert "acknowledg" in table["labels"]["accepted"]
    busiest = table["shards"]["shardId-000000000003"]
    assert busiest["offered_records"] == 1200 and busiest["accepted_records"] == 1110
    assert busiest["gateway_throttled_records"] == 21
    assert sum(table["timeline"]["offered_records"]) == result["summary"]["records_sent"]
    assert sum(table["timeline"]["accepted_records"]) == result["summary"]["records_acked"]


def test_kafka_offered_load_is_labelled_as_acknowledged_records_only() -> None:
    """On MSK the client picks the partition, so the offered series counts acknowledged records:
    its label said "what the workload asked of the stream" all the same."""
    from benchmarks.result import offered_vs_accepted

    recorder = _outcome().recorder
    kinesis = offered_vs_accepted(recorder, None, 3)["labels"]["offered"]
    kafka = offered_vs_accepted(recorder, None, 3, kafka=True)["labels"]["offered"]
    assert "what the workload asked" in kinesis
    assert "acknowledged" in kafka and "records failed" in kafka and "what the workload asked" not in kafka


def test_result_keeps_polling_and_efo_latency_apart() -> None:
    by_consumer = build_result(_outcome())["summary"]["end_to_end_ms_by_consumer"]
    assert by_consumer["polling"]["p50"] == pytest.approx(200, rel=0.002)
    assert by_consumer["efo"]["p50"] == pytest.approx(70, rel=0.002)


def test_merged_partials_keep_both_readers_and_the_accepted_load() -> None:
    parts = [partial_from_outcome(_outcome(w, 2)) for w in range(2)]
    merged = build_result(merge_partials(parts))
    single = build_result(_outcome())
    assert merged["offered_vs_accepted"]["shards"] == single["offered_vs_accepted"]["shards"]
    assert merged["summary"]["end_to_end_ms_by_consumer"] == single["summary"]["end_to_end_ms_by_consumer"]
    assert merged["summary"]["records_acked"] == single["summary"]["records_acked"]


def test_bulk_quantiles_equal_hdrh_own() -> None:
    histogram = LatencyHistogram()
    histogram.record_micros(range(1, 200_000, 7))
    histogram.record_n(2.5, 40)
    own = histogram.quantiles_ms(*(name for name, _ in QUANTILES))
    for name, percentile in QUANTILES:
        assert own[name] == histogram._hist.get_value_at_percentile(percentile) / 1000.0


def test_report_shows_offered_vs_accepted_and_both_readers() -> None:
    html = render_html(build_result(_outcome()))
    assert 'id="chart-offered-accepted"' in html and 'id="offered-accepted"' in html
    assert "enhanced fan-out (EFO) reader" in html and "GetRecords polling reader" in html


def test_report_renders_offered_accepted_and_reader_latencies_in_headless_chromium(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    result: dict[str, Any] = build_result(_outcome())
    report = write_html(result, tmp_path / "report.html")
    completed = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    dom = completed.stdout
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert 'id="chart-offered-accepted"' in dom
    assert dom.count("<tr>") >= 4 + 4  # the per-shard offered/accepted rows are in the DOM
    assert (
        "offered: records the bench scheduled" in dom and "accepted: records the stream acknowledged" in dom
    )
    assert "end to end, enhanced fan-out (EFO) reader" in dom
    assert "end to end, GetRecords polling reader" in dom
