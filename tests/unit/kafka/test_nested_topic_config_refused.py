"""A ``default.topic.config`` dict cannot carry security keys past the pass-through check.

confluent-kafka merges that nested dict into the top-level configuration, over the keys
already there; only the top-level keys were checked, so a nested
``enable.ssl.certificate.verification: False`` switched TLS verification off and a nested
``security.protocol`` downgraded an MSK IAM client.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import pytest
from confluent_kafka import KafkaException, Producer

from consumers.kafka import KafkaConsumerConfig
from producers.kafka import KafkaProducerConfig
from shardline.errors import ConfigurationError
from shardline.kafka_config import KafkaClientConfig

BUILDERS: dict[str, Callable[[dict[str, Any]], object]] = {
    "KafkaClientConfig.extra": lambda props: KafkaClientConfig("b:9098", extra=props),
    "KafkaProducerConfig.librdkafka": lambda props: KafkaProducerConfig(librdkafka=props),
    "KafkaConsumerConfig.librdkafka": lambda props: KafkaConsumerConfig("g", librdkafka=props),
}

NESTED_DOWNGRADES = [
    {"default.topic.config": {"enable.ssl.certificate.verification": False}},
    {"default.topic.config": {"ssl.endpoint.identification.algorithm": "none"}},
    {"default.topic.config": {"security.protocol": "PLAINTEXT"}},
    {"default.topic.config": MappingProxyType({"ssl.ca.location": "/tmp/evil.pem"})},
    {" Default.Topic.Config ": {"SASL.Mechanisms": "PLAIN"}},
    {"default.topic.config": {"default.topic.config": {"ssl.ca.location": "/tmp/evil.pem"}}},
    {"default.topic.config": {"debug": "all"}},
]


def test_confluent_kafka_applies_the_nested_dict_to_the_whole_client() -> None:
    """Why the nested dict matters: a client property inside it reaches librdkafka."""
    with pytest.raises(KafkaException, match=r"enable\.ssl\.certificate\.verification"):
        Producer(
            {
                "bootstrap.servers": "127.0.0.1:1",
                "default.topic.config": {"enable.ssl.certificate.verification": "not-a-bool"},
            }
        )


@pytest.mark.parametrize("where", sorted(BUILDERS))
@pytest.mark.parametrize("props", NESTED_DOWNGRADES, ids=repr)
def test_a_nested_security_key_is_refused(where: str, props: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=r"(?i)default\.topic\.config"):
        BUILDERS[where](props)


@pytest.mark.parametrize("where", sorted(BUILDERS))
def test_a_nested_value_that_is_not_a_dict_is_refused(where: str) -> None:
    with pytest.raises(ConfigurationError, match="must be a dict"):
        BUILDERS[where]({"default.topic.config": [("ssl.ca.location", "/tmp/evil.pem")]})


def test_a_nested_key_added_after_construction_is_refused_when_used() -> None:
    producer = KafkaProducerConfig(librdkafka={"default.topic.config": {"message.timeout.ms": 1000}})
    producer.librdkafka["default.topic.config"]["enable.ssl.certificate.verification"] = False
    with pytest.raises(ConfigurationError):
        producer.to_confluent()


def test_topic_tuning_in_the_nested_dict_still_passes() -> None:
    nested = {"default.topic.config": {"message.timeout.ms": 1000}}
    client = KafkaClientConfig("b:9098", extra=nested)
    assert client.to_confluent()["default.topic.config"] == {"message.timeout.ms": 1000}
    assert KafkaConsumerConfig("g", librdkafka=nested).to_confluent()["default.topic.config"]
