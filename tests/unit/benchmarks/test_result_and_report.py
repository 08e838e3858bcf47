"""The JSON result against its schema, the HTML report in headless Chromium, and compare."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from benchmarks.cli import main
from benchmarks.compare import compare_results
from benchmarks.report import render_html, write_html
from benchmarks.result import bound_by, build_result, load_schema, validate_result
from benchmarks.run import RunOutcome


@pytest.fixture
def result(outcome: RunOutcome) -> dict[str, Any]:
    return build_result(outcome)


def test_result_validates_against_its_schema(result: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(load_schema())
    validate_result(result)
    assert result["schema_version"] == 1
    assert result["summary"]["records_acked"] == 2000
    assert result["summary"]["consumer_records"] == 2000
    assert result["summary"]["throttles"] == 5
    assert len(result["timeline"]["seconds"]) == 6


def test_schema_rejects_a_broken_result(result: dict[str, Any]) -> None:
    broken = copy.deepcopy(result)
    del broken["summary"]["send_to_ack_ms"]["p99"]
    with pytest.raises(jsonschema.ValidationError):
        validate_result(broken)
    wrong_version = dict(result, schema_version=2)
    with pytest.raises(jsonschema.ValidationError):
        validate_result(wrong_version)


def test_result_is_json_serialisable_and_carries_no_payload(result: dict[str, Any]) -> None:
    text = json.dumps(result)
    assert "SLB1" not in text  # the binary payload magic never leaks into a result


def test_bound_by_verdicts() -> None:
    common: dict[str, Any] = {"records": 10_000, "client_cpu_share": 0.2, "emulator_cpu_share": 0.2}
    assert bound_by(rate=1000, achieved_rate=990, throttles=0, seconds_over_limit=0, **common)["verdict"] == (
        "rate setting"
    )
    assert bound_by(rate=None, achieved_rate=500, throttles=900, seconds_over_limit=3, **common)[
        "verdict"
    ] == ("shard limits")
    busy = dict(common, client_cpu_share=0.97)
    assert bound_by(rate=None, achieved_rate=500, throttles=0, seconds_over_limit=0, **busy)["verdict"] == (
        "client CPU"
    )
    emulator = dict(common, emulator_cpu_share=0.95)
    assert bound_by(rate=None, achieved_rate=500, throttles=0, seconds_over_limit=0, **emulator)[
        "verdict"
    ] == ("emulator CPU")


def test_html_is_self_contained(result: dict[str, Any]) -> None:
    html = render_html(result)
    for chart in ("chart-throughput", "chart-latency", "chart-iterator-age", "chart-heatmap"):
        assert f'id="{chart}"' in html
    assert "<script" not in html
    for fetch in ('src="http', 'href="http', "@import", "url("):
        assert fetch not in html


def test_html_header_states_the_workload_values(result: dict[str, Any]) -> None:
    html = render_html(result)
    assert f"{result['config']['keys']} keys" in html
    assert "built-in method" not in html and " object at 0x" not in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_report_renders_in_headless_chromium(result: dict[str, Any], tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium is not installed")
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
    for chart in ("chart-throughput", "chart-latency", "chart-iterator-age", "chart-heatmap"):
        assert f'id="{chart}"' in dom
    assert dom.count("<polyline") >= 3
    assert dom.count('class="cell"') == len(result["shard_timeline"]) * 5
    assert "Bound by" in dom


def test_compare_marks_better_and_worse(result: dict[str, Any]) -> None:
    faster = copy.deepcopy(result)
    faster["summary"]["producer_records_per_sec"] *= 2
    faster["summary"]["send_to_ack_ms"]["p99"] *= 3
    rows = {row["metric"]: row for row in compare_results(result, faster)}
    assert rows["producer records/s"]["verdict"] == "better"
    assert rows["send-to-ack p99 ms"]["verdict"] == "worse"
    assert rows["throttles"]["verdict"] == "same"


def test_compare_command_reads_two_files(
    result: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(result))
    slower = copy.deepcopy(result)
    slower["summary"]["producer_records_per_sec"] /= 2
    b.write_text(json.dumps(slower))
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "producer records/s" in out and "worse" in out


def test_peers_reports_missing_peer_modules_clearly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    def missing(name: str) -> Any:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", missing)
    assert main(["peers"]) == 2
    assert "benchmarks.peers.kinesis" in capsys.readouterr().err
