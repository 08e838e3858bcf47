"""What the CLI refuses before touching any target, Kafka target settings, and the peers table."""

from __future__ import annotations

import os
from typing import Any

import pytest

import benchmarks.targets as targets
from benchmarks.cli import main
from benchmarks.peers.runner import PeerRow, _in_child, normalise, rank_rows
from benchmarks.targets import BOOTSTRAP_ENV, kafka_target
from shardline.errors import ConfigurationError
from shardline.kafka_config import Plaintext, Tls


@pytest.fixture
def no_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting any target fails the test: refusals must come first."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a target was started")

    for name in ("embedded_local_target", "embedded_local_target_process"):
        monkeypatch.setattr(targets, name, refuse)
    monkeypatch.delenv(BOOTSTRAP_ENV, raising=False)


@pytest.mark.usefixtures("no_target")
def test_efo_on_the_embedded_target_is_refused_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--consumer", "efo", "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert "SubscribeToShard" in err and "--target kinesis" in err


@pytest.mark.usefixtures("no_target")
def test_msk_without_bootstrap_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--target", "msk", "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert "--bootstrap" in err and BOOTSTRAP_ENV in err


@pytest.mark.usefixtures("no_target")
@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--target", "msk", "--bootstrap", "127.0.0.1:1", "--aggregate"],
        ["run", "--target", "msk", "--bootstrap", "127.0.0.1:1", "--consumer", "efo"],
        ["run", "--topic", "t"],
        ["run", "--target", "kinesis", "--embedded-target-process"],
    ],
)
def test_contradictory_run_options_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("stream-bench: ")


def test_kafka_target_from_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BOOTSTRAP_ENV, "broker-a:9092")
    from_env = kafka_target(None)
    assert from_env.bootstrap == "broker-a:9092"
    assert isinstance(from_env.client.security, Plaintext)
    flagged = kafka_target("broker-b:9094", "tls")
    assert flagged.bootstrap == "broker-b:9094"
    assert isinstance(flagged.client.security, Tls)
    with pytest.raises(ConfigurationError, match="plaintext, tls or msk-iam"):
        kafka_target("broker-b:9094", "sasl-everything")


def test_peer_results_are_normalised_whatever_their_key_names() -> None:
    kinesis = normalise(
        "boto3", "producer", {"records": 2000, "records_per_second": 8000, "cpu_us_per_record": 12.5}
    )
    assert (kinesis.records, kinesis.records_per_sec, kinesis.cpu_us_per_record) == (2000, 8000.0, 12.5)
    derived = normalise("x", "producer", {"records": 1000, "seconds": 0.5, "cpu_seconds": 0.01})
    assert derived.records_per_sec == 2000.0 and derived.cpu_us_per_record == pytest.approx(10.0)
    fallback = normalise("y", "producer", {"messages": 100, "seconds": 1.0}, fallback_cpu=0.002)
    assert fallback.cpu_us_per_record == pytest.approx(20.0)
    unverified = normalise("z", "producer", {"records": 10, "records_per_sec": 5, "verified": False})
    assert unverified.error is not None and "missing" in unverified.error
    failed = normalise("w", "producer", {"error": "RuntimeError: boom"})
    assert failed.error == "RuntimeError: boom"


def test_ratios_are_against_the_best_peer_of_the_same_role() -> None:
    rows = [
        PeerRow("shardline-batch", "producer", 1000, 20_000.0, 5.0),
        PeerRow("boto3", "producer", 1000, 10_000.0, 12.0),
        PeerRow("kinesis-agg", "producer", 1000, 40_000.0, 4.0),
        PeerRow("aiokpl", "producer", error="failed"),
        PeerRow("shardline-consumer", "consumer", 1000, 3000.0, 9.0),
        PeerRow("confluent-kafka-consumer", "consumer", 1000, 6000.0, 3.0),
    ]
    ranked = {row["client"]: row for row in rank_rows(rows)}
    assert ranked["shardline-batch"]["vs_best_peer_rate"] == pytest.approx(0.5)
    assert ranked["shardline-batch"]["vs_best_peer_cpu"] == pytest.approx(1.25)
    assert ranked["kinesis-agg"]["vs_best_peer_rate"] == pytest.approx(1.0)
    assert ranked["aiokpl"]["vs_best_peer_rate"] is None
    assert ranked["shardline-consumer"]["vs_best_peer_rate"] == pytest.approx(0.5)
    assert ranked["shardline-consumer"]["vs_best_peer_cpu"] == pytest.approx(3.0)


def test_a_client_process_that_dies_is_reported_not_waited_on() -> None:
    # os.abort(queue) raises TypeError in the child: it ends without putting a result.
    result, cpu = _in_child(os.abort, timeout=120.0)
    assert cpu is None
    assert "ended without a result" in result["error"]
