"""librdkafka ``debug`` cannot be switched on through any pass-through dict.

Its contexts (``security``, ``all``) log SASL exchanges and broker payloads.  The producer's
and consumer's ``librdkafka`` dicts refused it when the config was built, but
``KafkaClientConfig.extra`` passed it straight to librdkafka, and a ``librdkafka`` dict
changed after construction (it is a plain dict) was not checked again.
"""

from __future__ import annotations

import pytest

from consumers.kafka import KafkaConsumerConfig
from producers.kafka import KafkaProducerConfig
from shardline.errors import ConfigurationError
from shardline.kafka_config import KafkaClientConfig


@pytest.mark.parametrize("key", ["debug", " debug "])
def test_client_extra_refuses_debug(key: str) -> None:
    with pytest.raises(ConfigurationError, match="debug"):
        KafkaClientConfig("broker:9092", extra={key: "all"})


def test_producer_dict_changed_after_construction_is_checked_again() -> None:
    config = KafkaProducerConfig()
    config.librdkafka["debug"] = "security"
    with pytest.raises(ConfigurationError, match="debug"):
        config.to_confluent()


def test_consumer_dict_changed_after_construction_is_checked_again() -> None:
    config = KafkaConsumerConfig(group_id="g")
    config.librdkafka["debug"] = "all"
    with pytest.raises(ConfigurationError, match="debug"):
        config.to_confluent()


def test_tuning_properties_still_pass() -> None:
    extra = {"socket.keepalive.enable": True}
    assert KafkaClientConfig("broker:9092", extra=extra).to_confluent()["socket.keepalive.enable"] is True
