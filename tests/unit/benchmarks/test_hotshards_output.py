"""`stream-bench hotshards` piped into a file or another program: one line per finding, never
wrapped at 80 columns."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import hotshards
from benchmarks.cli import main

RECOMMENDATION = (
    "split shardId-000000000001 (it carries 61% of the records, 3.2x its fair share) or salt the "
    "hot keys dev-1, dev-2 and dev-3 over 8 suffixes each so they spread over the other shards"
)


async def _analysis(*_args: Any, **_kwargs: Any) -> dict[str, Any]:
    summary = {"share": 0.61, "records_per_sec_peak": 1200, "bytes_per_sec_peak": 900_000,
               "seconds_over_limit": 12}  # fmt: skip
    return {
        "shards": {"shardId-000000000001": summary},
        "hot_shards": [
            {"shard_id": "shardId-000000000001", "top_keys": [{"key": "dev-1", "count": 5}],
             "recommendation": RECOMMENDATION}
        ],
    }  # fmt: skip


def test_piped_output_is_not_wrapped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(hotshards, "scan_hot_shards", _analysis)
    assert main(["hotshards", "--stream", "s", "--duration", "1", "--endpoint", "http://127.0.0.1:9"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.strip() == RECOMMENDATION for line in lines), lines
    assert max(len(line) for line in lines) > 80
