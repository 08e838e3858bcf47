"""The in-process producing-side benchmark runs the real generator, recorder and producer."""

from __future__ import annotations

import pytest

from benchmarks.producing_side import main, measure


async def test_every_record_is_acknowledged_and_thin_shards_mean_more_entries() -> None:
    few = await measure(4, 100, ticks=200)
    many = await measure(64, 100_000, ticks=200)
    assert few["cpu_us_per_record"] > 0 and many["cpu_us_per_record"] > 0
    # 10-record ticks, a request every 20: ~200 records spread over 64 shards or over 4
    assert many["entries_per_record"] > 5 * few["entries_per_record"]


def test_the_command_prints_cpu_and_entries_per_record(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--shards", "2", "--keys", "10", "--ticks", "40"]) == 0
    out = capsys.readouterr().out
    assert "CPU-us/record" in out and "Kinesis entries/record" in out
