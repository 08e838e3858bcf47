"""A ``kafka://`` URI takes no credentials: ``user:password@`` is refused, never echoed.

Its authority is the bootstrap list, handed to librdkafka as it is: the user info became part
of a broker's name, and librdkafka put it into every log line and error about that broker
("Failed to resolve '[user:password@b-1]:9096'")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from consumers.cli import parse_kafka_uri
from producers.cli import _parse_target
from shardline.errors import ConfigurationError


def _consumer(uri: str) -> Any:
    return parse_kafka_uri(uri)


def _replay(uri: str) -> Any:
    return parse_kafka_uri(uri, require_group=False)


@pytest.mark.parametrize("parse", [_consumer, _replay, _parse_target], ids=["consume", "replay", "produce"])
@pytest.mark.parametrize(
    "authority", ["admin:pw-secret@b-1.example.com:9096", "pw-secret@b-1:9096", "a:b%40pw-secret@b:1,c:2"]
)
def test_user_info_in_a_kafka_uri_is_refused_without_echoing_it(
    parse: Callable[[str], Any], authority: str
) -> None:
    with pytest.raises(ConfigurationError, match="no user name or password") as raised:
        parse(
            f"kafka://{authority}/telemetry?group=g"
            if parse is not _parse_target
            else f"kafka://{authority}/t"
        )
    assert "pw-secret" not in str(raised.value) and "kafka://***@" in str(raised.value)


def test_a_malformed_target_is_echoed_without_its_user_info() -> None:
    with pytest.raises(ConfigurationError) as raised:
        _parse_target("kafkas://admin:pw-secret@b-1:9096/t")
    assert "pw-secret" not in str(raised.value) and "kafkas://***@b-1:9096/t" in str(raised.value)


def test_brokers_alone_still_parse() -> None:
    assert parse_kafka_uri("kafka://b-1:9096,b-2:9096/t?group=g").bootstrap_servers == "b-1:9096,b-2:9096"
    assert _parse_target("kafka://b-1:9096/t?security=tls") == ("kafka", "b-1:9096", "t", "tls")


@pytest.mark.parametrize("servers", ["admin:pw-secret@b-1:9096", "b-0:9096,pw-secret@b-1:9096"])
def test_bootstrap_servers_with_user_info_are_refused_without_echoing_them(servers: str) -> None:
    from benchmarks.targets import kafka_target
    from shardline.kafka_config import KafkaClientConfig

    for build in (lambda: KafkaClientConfig(servers), lambda: kafka_target(servers)):
        with pytest.raises(ConfigurationError, match="user info") as raised:
            build()
        assert "pw-secret" not in str(raised.value)
