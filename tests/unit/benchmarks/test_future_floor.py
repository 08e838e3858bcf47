"""The future-floor measurement runs both patterns for both handles, one line for each."""

from __future__ import annotations

import asyncio
import json

import pytest

from benchmarks.peers import future_floor


def test_both_patterns_are_measured_and_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert future_floor.main(["--records", "2000", "--repeat", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["handle"], line["pattern"]) for line in lines] == [
        ("asyncio future", "held"),
        ("asyncio future", "one at a time"),
        ("slotted awaitable", "held"),
        ("slotted awaitable", "one at a time"),
    ]
    for line in lines:
        assert line["records"] == 2000
        runs = line["cpu_us_per_record"]
        assert len(runs) == 2 and runs == sorted(runs) and all(run >= 0.0 for run in runs)


@pytest.mark.parametrize("held", [True, False])
def test_slotted_handles_await_to_their_own_results(held: bool) -> None:
    """The slotted handle is a real awaitable: each await returns its own position's result."""

    async def read_back() -> list[int | None]:
        results = future_floor._Results(3)
        handles = [future_floor._SlottedHandle(results, index) for index in range(3)]
        results.values[:] = [10, 11, 12]
        return [await handle for handle in handles]

    assert asyncio.run(read_back()) == [10, 11, 12]
    assert future_floor.measure(500, held=held, handle="slotted awaitable") >= 0.0
