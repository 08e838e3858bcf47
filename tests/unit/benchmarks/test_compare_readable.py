"""compare shows what differs first, warns on different workloads, reads like numbers people
write, and calls changes within run-to-run noise "same"; results carry where they ran and
whether they were interrupted."""

from __future__ import annotations

import copy
import dataclasses
import io
from typing import Any

import pytest
from rich.console import Console

from benchmarks.compare import compare_results, differences, print_comparison, readable
from benchmarks.environment import environment
from benchmarks.result import build_result, validate_result
from benchmarks.run import RunOutcome


@pytest.fixture
def result(outcome: RunOutcome) -> dict[str, Any]:
    where = environment("embedded", "http://127.0.0.1:1", "us-east-1")
    located = dataclasses.replace(outcome, environment=where)
    return build_result(located)


@pytest.mark.parametrize(
    ("value", "text"),
    [(2000.0, "2,000"), (1782.4, "1,782"), (139.5, "140"), (5.58, "5.58"), (12.34, "12.3"), (0.0, "0"),
     (-3000.0, "-3,000"), (0.0042, "0.0042")],
)  # fmt: skip
def test_readable_numbers(value: float, text: str) -> None:
    assert readable(value) == text


def test_changes_within_noise_are_same(result: dict[str, Any]) -> None:
    other = copy.deepcopy(result)
    other["summary"]["client_cpu_us_per_record"] *= 1.04  # +4 % CPU: noise
    other["summary"]["producer_records_per_sec"] *= 1.5
    rows = {row["metric"]: row for row in compare_results(result, other)}
    assert rows["client CPU us/record"]["verdict"] == "same"
    assert rows["producer records/s"]["verdict"] == "better"


def test_setup_differences_come_first_with_a_workload_warning(result: dict[str, Any]) -> None:
    other = copy.deepcopy(result)
    other["config"]["rate"] = 3000
    other["environment"] = environment("kinesis", "https://kinesis.eu-west-1.amazonaws.com", "eu-west-1")
    lines, workload_differs = differences(result, other)
    assert workload_differs
    assert any(line.startswith("rate: ") for line in lines)
    assert any("(local emulator) -> https://kinesis.eu-west-1.amazonaws.com (AWS region eu-west-1)" in line
               for line in lines)  # fmt: skip
    out = io.StringIO()
    print_comparison(compare_results(result, other), Console(file=out, width=200), changed=(lines, True))
    text = out.getvalue()
    warning = text.index("warning: the workloads differ")
    assert text.index("what differs") < warning < text.index("B against A")
    assert "e+0" not in text


def test_same_setup_prints_no_differences(result: dict[str, Any]) -> None:
    assert differences(result, copy.deepcopy(result)) == ([], False)


def test_results_say_where_they_ran_and_whether_interrupted(outcome: RunOutcome) -> None:
    stopped = dataclasses.replace(
        outcome, interrupted_after=2.5, environment=environment("embedded", "http://127.0.0.1:1", None)
    )
    result = build_result(stopped)
    validate_result(result)
    assert result["interrupted"] is True
    assert result["environment"]["where"] == "http://127.0.0.1:1 (local emulator)"
    assert any(note.startswith("interrupted after 2.5 s") for note in result["notes"])


def test_report_has_a_colour_scale_and_plain_cpu_wording(result: dict[str, Any], tmp_path: Any) -> None:
    from benchmarks.report import write_html

    html = write_html(result, tmp_path / "report.html").read_text()
    assert html.count('class="scale"') == 6 and "share of the limit" in html
    assert "µs per record" in html and "(us per record)" not in html
    assert "(local emulator)" in html  # the header says where it ran
