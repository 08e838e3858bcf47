"""The Kafka peer table's ratios: each taken within its repetition, against the right peer."""

from __future__ import annotations

from typing import Any

from benchmarks.peers.kafka import summarise


def _run(repeat: int, client: str, msgs_per_s: float, cpu_us_per_msg: float) -> dict[str, Any]:
    return {
        "repeat": repeat,
        "client": client,
        "msgs_per_s": msgs_per_s,
        "cpu_us_per_msg": cpu_us_per_msg,
        "gc_us_per_msg": 0.0,
        "cpu_util": 1.0,
        "load_1m_before": 0.5,
    }


def test_producers_are_compared_with_the_raw_client_and_both_asyncio_peers_within_each_repetition() -> None:
    results = [
        _run(0, "confluent-kafka", 400_000, 2.0),
        _run(0, "shardline-send", 100_000, 4.0),
        _run(0, "confluent-kafka-aio", 50_000, 16.0),
        _run(0, "aiokafka", 80_000, 10.0),
        # a slower machine in the second repetition: every client moves together
        _run(1, "confluent-kafka", 200_000, 4.0),
        _run(1, "shardline-send", 40_000, 10.0),
        _run(1, "confluent-kafka-aio", 20_000, 40.0),
        _run(1, "aiokafka", 40_000, 20.0),
    ]
    rows = {row["client"]: row for row in summarise(results)}
    send = rows["shardline-send"]
    assert send["vs_raw_cpu"] == {"median": 2.25, "min": 2.0, "max": 2.5}
    assert send["vs_confluent_aio_cpu"] == {"median": 0.25, "min": 0.25, "max": 0.25}
    assert send["vs_confluent_aio_throughput"] == {"median": 2.0, "min": 2.0, "max": 2.0}
    assert send["vs_aiokafka_cpu"] == {"median": 0.45, "min": 0.4, "max": 0.5}
    assert send["vs_aiokafka_throughput"] == {"median": 1.12, "min": 1.0, "max": 1.25}
    assert rows["confluent-kafka-aio"]["vs_confluent_aio_cpu"]["median"] == 1.0
    assert rows["confluent-kafka-aio"]["vs_raw_of"] == "confluent-kafka"


def test_a_peer_missing_from_a_repetition_gives_no_ratio_against_it() -> None:
    results = [_run(0, "confluent-kafka", 400_000, 2.0), _run(0, "shardline-send", 100_000, 4.0)]
    send = {row["client"]: row for row in summarise(results)}["shardline-send"]
    assert "vs_confluent_aio_cpu" not in send and "vs_aiokafka_throughput" not in send
    assert send["vs_raw_throughput"]["median"] == 0.25
