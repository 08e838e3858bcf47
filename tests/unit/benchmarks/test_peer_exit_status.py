"""The peer benchmarks exit 1 when a run failed or lost records: left out of the table, it must
not look like a clean run to a script (``kinesis_read`` already did so; the others exited 0)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from benchmarks.peers import kafka, kinesis


def _kinesis_rows(verified: bool) -> Any:
    def run(name: str, args: argparse.Namespace) -> dict[str, Any]:
        return {"client": name, "records": 10, "cpu_us_per_record": 1.0, "verified": verified}

    return run


@pytest.mark.parametrize(("verified", "status"), [(True, 0), (False, 1)])
def test_the_kinesis_table_exits_1_when_a_run_does_not_count(
    verified: bool, status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kinesis, "_run_in_process", _kinesis_rows(verified))
    monkeypatch.setattr(kinesis, "_table", lambda runs: "table")
    assert kinesis.main(["--endpoint", "http://127.0.0.1:9", "--records", "10"]) == status


@pytest.mark.parametrize(("delivered", "status"), [(10, 0), (5, 1)])
def test_the_kafka_summary_exits_1_when_a_run_is_incomplete(
    delivered: int, status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run_peer(name: str, bootstrap: str, topic: str, messages: int, *rest: Any) -> dict[str, Any]:
        return {"client": name, "messages": delivered, "expected": messages}

    monkeypatch.setattr(kafka, "run_peer", run_peer)
    monkeypatch.setattr(kafka, "create_topic", lambda bootstrap, partitions: "t")
    monkeypatch.setattr(kafka, "summarise", lambda results: [])
    argv = ["--bootstrap", "127.0.0.1:9", "--messages", "10", "--peers", "raw", "--consumers", ""]
    assert kafka.main(argv) == status
