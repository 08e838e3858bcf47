"""The run's result carries the bench process's peak memory, merged as the largest worker's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmarks.merge import merge_partials, partial_from_outcome
from benchmarks.report import print_summary, render_html
from benchmarks.result import build_result, validate_result
from benchmarks.run import RunOptions, RunOutcome, peak_rss_mib


def test_peak_rss_is_this_process_resident_memory() -> None:
    peak = peak_rss_mib()
    assert peak is not None
    ballast = bytearray(64 * 2**20)  # touched pages count; the peak cannot be below them
    ballast[::4096] = b"x" * len(ballast[::4096])
    grown = peak_rss_mib()
    assert grown is not None and grown >= 64 and grown >= peak
    del ballast


def test_result_report_and_merge_carry_the_peak(
    outcome: RunOutcome, capsys: pytest.CaptureFixture[str]
) -> None:
    result = build_result(replace(outcome, peak_rss_mib=123.4))
    validate_result(result)
    assert result["summary"]["client_peak_rss_mib"] == 123.4
    assert "client peak RSS</td><td>123 MiB" in render_html(result)
    print_summary(result)
    assert "client peak RSS MiB" in capsys.readouterr().out
    parts = []
    for worker, peak in ((0, 100.0), (1, 150.0)):
        options = replace(outcome.options, workers=2, worker_id=worker)
        shards = outcome.shard_ids[worker::2]  # each shard belongs to one worker
        parts.append(
            partial_from_outcome(replace(outcome, options=options, shard_ids=shards, peak_rss_mib=peak))
        )
    assert build_result(merge_partials(parts))["summary"]["client_peak_rss_mib"] == 150.0


def test_a_platform_without_the_figure_reports_none(outcome: RunOutcome) -> None:
    result = build_result(outcome)  # peak_rss_mib left at None
    validate_result(result)
    assert result["summary"]["client_peak_rss_mib"] is None
    assert "client peak RSS" not in render_html(result)
    assert isinstance(outcome.options, RunOptions)
