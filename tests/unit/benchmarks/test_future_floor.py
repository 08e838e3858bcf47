"""The future-floor measurement runs both patterns and reports one line for each."""

from __future__ import annotations

import json

import pytest

from benchmarks.peers import future_floor


def test_both_patterns_are_measured_and_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert future_floor.main(["--records", "2000", "--repeat", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["futures"] for line in lines] == ["held", "one at a time"]
    for line in lines:
        assert line["records"] == 2000
        runs = line["cpu_us_per_record"]
        assert len(runs) == 2 and runs == sorted(runs) and all(run >= 0.0 for run in runs)
