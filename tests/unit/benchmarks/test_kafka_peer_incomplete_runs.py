"""A Kafka peer run that delivered or read fewer messages than it was given is no figure."""

from __future__ import annotations

import queue
from typing import Any

import pytest

from benchmarks.peers import kafka
from benchmarks.peers.runner import PeerWorkload, _kafka_child, normalise, rank_rows


def _half(bootstrap: str, topic: str, messages: int, size: int, keys: int, span: Any = None) -> int:
    """A client half of whose deliveries failed: it returns the count it delivered."""
    span.start()
    return messages // 2


def _child_row(name: str, role: str) -> Any:
    results: queue.Queue[Any] = queue.Queue()
    _kafka_child(results, name, "127.0.0.1:1", "topic", PeerWorkload(records=1000))
    result, cpu = results.get_nowait()
    return normalise(name, role, result, fallback_cpu=cpu)


def test_a_producer_that_delivered_half_is_a_failed_row_not_a_ranked_figure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(kafka.PRODUCERS, "half-delivered", _half)
    row = _child_row("half-delivered", "producer")
    assert row.error == "500 of 1000 records delivered"
    assert row.raw is not None and row.raw["records"] == 500  # the figures stay for the record
    ranked = rank_rows([row])
    assert ranked[0]["vs_best_peer_rate"] is None and ranked[0]["vs_best_peer_cpu"] is None


def test_a_consumer_that_read_short_is_a_failed_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(kafka.CONSUMERS, "half-read", _half)
    assert _child_row("half-read", "consumer").error == "500 of 1000 records read"


def _run(repeat: int, client: str, cpu: float, messages: int = 1000) -> dict[str, Any]:
    return {
        "repeat": repeat,
        "client": client,
        "messages": messages,
        "expected": 1000,
        "msgs_per_s": 1_000_000 / cpu,
        "cpu_us_per_msg": cpu,
        "gc_us_per_msg": 0.0,
        "cpu_util": 1.0,
        "load_1m_before": 0.5,
    }


def test_the_summary_leaves_out_runs_that_lost_messages_for_the_client_and_as_a_baseline() -> None:
    results = [
        _run(0, "confluent-kafka", 2.0),
        _run(0, "shardline-send", 4.0),
        # the second repetition: Shardline lost messages and looked cheap; the raw client lost some too
        _run(1, "confluent-kafka", 1.0, messages=10),
        _run(1, "shardline-send", 0.5, messages=600),
        _run(2, "confluent-kafka", 2.0),
        _run(2, "shardline-send", 5.0),
    ]
    rows = {row["client"]: row for row in kafka.summarise(results)}
    send = rows["shardline-send"]
    assert (send["runs"], send["incomplete_runs"]) == (2, 1)
    assert send["cpu_us_per_msg"] == {"median": 4.5, "min": 4.0, "max": 5.0}
    assert send["vs_raw_cpu"] == {"median": 2.25, "min": 2.0, "max": 2.5}


def test_a_client_without_one_complete_run_gets_an_error_instead_of_figures() -> None:
    rows = {
        row["client"]: row
        for row in kafka.summarise([_run(0, "confluent-kafka", 2.0), _run(0, "aiokafka", 1.0, messages=999)])
    }
    assert rows["aiokafka"] == {
        "client": "aiokafka",
        "runs": 0,
        "incomplete_runs": 1,
        "error": "no run delivered (or read) every message",
    }
    assert "vs_aiokafka_cpu" not in rows["confluent-kafka"]
