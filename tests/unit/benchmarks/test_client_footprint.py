"""The client-footprint measurement builds the four clients and reports each one."""

from __future__ import annotations

import json

import pytest

from benchmarks import client_footprint


def test_each_client_is_built_and_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert client_footprint.main([]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = result["clients"]
    assert [row["client"] for row in rows] == [
        "kinesis (producer)",
        "kinesis (reader)",
        "dynamodb (checkpoints)",
        "firehose (sink)",
    ]
    added = [row["tracked_objects_added"] for row in rows]
    assert added == sorted(added)  # each client adds to what the process holds
    assert result["rss_mib"] > 0
