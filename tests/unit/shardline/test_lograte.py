"""A repeated client error is logged at a bounded rate, every report still counted: librdkafka
reports an unreachable broker on every reconnect attempt, and ``consume`` logged hundreds of
identical lines within milliseconds."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from confluent_kafka import KafkaError

from consumers.kafka import KafkaConsumerConfig, KafkaSource
from shardline.kafka_config import KafkaClientConfig
from shardline.lograte import RepeatedWarning

LOGGER = "tests.lograte"


def test_a_kind_is_logged_once_an_interval_with_what_was_held_back(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    warnings = RepeatedWarning(logging.getLogger(LOGGER), interval=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for _ in range(500):
            warnings.warning("transport", "broker down: %s", "x")
        warnings.warning("auth", "auth failed")  # another kind is not held back by the first
        now[0] = 61.0
        warnings.warning("transport", "broker down: %s", "x")
    assert [record.getMessage() for record in caplog.records] == [
        "broker down: x",
        "auth failed",
        "broker down: x (and 499 more like it since)",
    ]


class _Counting:
    def __init__(self) -> None:
        self.events = 0

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.events += name == "kafka_client_error"


def test_the_kafka_source_logs_a_storm_of_transport_errors_once_and_counts_them_all(
    caplog: pytest.LogCaptureFixture,
) -> None:
    built: list[dict[str, Any]] = []
    observer = _Counting()
    KafkaSource(
        ["t"],
        KafkaClientConfig(bootstrap_servers="127.0.0.1:9"),
        KafkaConsumerConfig(group_id="g"),
        consumer_factory=lambda conf: built.append(conf) or object(),
        observer=observer,
    )
    with caplog.at_level(logging.WARNING, logger="consumers.kafka"):
        for _ in range(300):
            built[0]["error_cb"](KafkaError(KafkaError._TRANSPORT))
    assert len([r for r in caplog.records if "kafka client error" in r.getMessage()]) == 1
    assert observer.events == 300
