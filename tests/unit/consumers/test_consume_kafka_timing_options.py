"""The librdkafka timing options a ``kafka://`` source URI accepts reach the consumer config.

``max_poll_interval_ms`` is the one a slow sink needs: a member whose batch takes longer
than it between two polls is dropped from the group, its partitions go to another member and
its commits are refused.
"""

from __future__ import annotations

from typing import Any

import pytest

import consumers.kafka
from consumers.cli import _kafka_source, parse_kafka_uri
from shardline.errors import ConfigurationError
from shardline.metrics import NullObserver


def _consumer_config(monkeypatch: pytest.MonkeyPatch, uri: str) -> Any:
    built: list[Any] = []
    monkeypatch.setattr(consumers.kafka, "KafkaSource", lambda *args, **kwargs: built.append(args))
    _kafka_source(parse_kafka_uri(uri), "trim_horizon", NullObserver())
    return built[0][2]


def test_max_poll_interval_ms_reaches_the_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _consumer_config(monkeypatch, "kafka://127.0.0.1:9092/t?group=g&max_poll_interval_ms=900000")
    assert config.max_poll_interval_ms == 900_000
    assert config.to_confluent()["max.poll.interval.ms"] == 900_000


def test_both_timing_options_together(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _consumer_config(
        monkeypatch, "kafka://127.0.0.1:9092/t?group=g&session_timeout_ms=10000&max_poll_interval_ms=20000"
    )
    assert (config.session_timeout_ms, config.max_poll_interval_ms) == (10_000, 20_000)


def test_unset_timing_options_keep_the_config_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _consumer_config(monkeypatch, "kafka://127.0.0.1:9092/t?group=g")
    assert (config.session_timeout_ms, config.max_poll_interval_ms) == (45_000, 300_000)


def test_max_poll_interval_ms_must_be_an_integer() -> None:
    with pytest.raises(ConfigurationError, match="max_poll_interval_ms must be an integer"):
        parse_kafka_uri("kafka://b:9092/t?group=g&max_poll_interval_ms=soon")


def test_max_poll_interval_below_the_session_timeout_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="max_poll_interval_ms must be >= session_timeout_ms"):
        _consumer_config(monkeypatch, "kafka://127.0.0.1:9092/t?group=g&max_poll_interval_ms=1000")
