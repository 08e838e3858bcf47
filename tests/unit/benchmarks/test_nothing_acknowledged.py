"""A run in which no record was acknowledged: a verdict that says so, no latencies of 0 ms,
and an exit status that is not success, though the result is still written."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from benchmarks.cli import _print_result, _write_files
from benchmarks.recorder import Recorder
from benchmarks.report import print_summary
from benchmarks.result import validate_result
from benchmarks.run import RunOptions, RunOutcome
from benchmarks.workload import WorkloadSpec

SHARD = "shardId-000000000000"


def _unacknowledged(*, throttles: int) -> RunOutcome:
    recorder = Recorder([SHARD], 0.0)
    for second in range(3):
        recorder.sent[second] += 100
        recorder.failed[second] += 100
        recorder.throttles[second] += throttles
        recorder.load.add(SHARD, second, "device-000001", 256)
    return RunOutcome(
        options=RunOptions(shards=1, workload=WorkloadSpec(duration=3, rate=100)),
        recorder=recorder,
        stream="bench-test",
        shard_ids=[SHARD],
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        wall_seconds=3.2,
        client_cpu_seconds=0.1,
        process_cpu_seconds=0.2,
        emulator_in_process=True,
        gateway=None,
    )


def _no_float_is_nan(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_no_float_is_nan(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_float_is_nan(v) for v in value)
    return True


@pytest.mark.parametrize(("throttles", "cause"), [(0, "every record failed"), (40, "120 throttled")])
def test_the_verdict_says_nothing_was_acknowledged(throttles: int, cause: str, tmp_path: Path) -> None:
    result = _write_files(_unacknowledged(throttles=throttles), tmp_path)
    validate_result(result)
    assert result["bound_by"]["verdict"] == "nothing acknowledged"
    assert cause in result["bound_by"]["explanation"]
    written = json.loads((tmp_path / "result.json").read_text(), parse_constant=float)
    assert _no_float_is_nan(written)
    html = (tmp_path / "report.html").read_text()
    assert "nothing acknowledged" in html
    assert "<td>0.0</td>" not in html  # an empty histogram's quantiles are not latencies


def test_the_summary_shows_no_latency_and_the_command_does_not_succeed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _write_files(_unacknowledged(throttles=0), tmp_path)
    console = Console(file=None, width=200, force_terminal=False)
    with console.capture() as captured:
        print_summary(result, console)
    summary = captured.get()
    assert "0.0/0.0" not in summary
    assert "-/-/-/-" in summary
    assert _print_result(result, tmp_path) == 1
    assert "no record was acknowledged" in capsys.readouterr().err
