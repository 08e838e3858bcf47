"""``shardline consume`` warns when it would talk plaintext Kafka to a host that is not loopback."""

from __future__ import annotations

from typing import Any

import pytest

import consumers.kafka
from consumers.cli import _kafka_source, parse_kafka_uri
from shardline.metrics import NullObserver


def _plaintext_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "plaintext" in r.getMessage()]


@pytest.mark.parametrize(("bootstrap", "warned"), [("10.1.2.3:9092", True), ("127.0.0.1:9092", False)])
def test_consume_kafka_source_warns_for_remote_plaintext(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, bootstrap: str, warned: bool
) -> None:
    built: list[Any] = []
    monkeypatch.setattr(consumers.kafka, "KafkaSource", lambda *args, **kwargs: built.append(args))
    with caplog.at_level("WARNING"):
        _kafka_source(parse_kafka_uri(f"kafka://{bootstrap}/t?group=g"), "trim_horizon", NullObserver())
    assert built and bool(_plaintext_warnings(caplog)) is warned


@pytest.mark.parametrize("module", ["consumers.replay.cli", "consumers.tail.cli"])
@pytest.mark.parametrize(("bootstrap", "warned"), [("b-1.msk.example.com:9092", True), ("[::1]:9092", False)])
def test_replay_and_tail_warn_for_remote_plaintext(
    caplog: pytest.LogCaptureFixture, module: str, bootstrap: str, warned: bool
) -> None:
    import importlib

    kafka_client = importlib.import_module(module)._kafka_client
    with caplog.at_level("WARNING"):
        kafka_client(parse_kafka_uri(f"kafka://{bootstrap}/t?group=g"))
    assert bool(_plaintext_warnings(caplog)) is warned
    caplog.clear()
    with caplog.at_level("WARNING"):
        kafka_client(parse_kafka_uri(f"kafka://{bootstrap}/t?group=g&security=tls"))
    assert not _plaintext_warnings(caplog)
