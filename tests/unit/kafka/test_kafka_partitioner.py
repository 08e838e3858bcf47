"""The producer partitions keys as the Java client does, unless told otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaException, Producer

from consumers.kafka import KafkaConsumerConfig
from producers._kafka_config import PARTITIONERS
from producers.kafka import KafkaProducerConfig
from shardline.errors import ConfigurationError
from shardline.kafka_config import KafkaClientConfig
from tests.kafka_partitioning import JAVA_VECTORS, java_murmur2


@pytest.mark.parametrize(("key", "expected"), JAVA_VECTORS, ids=[key.decode() for key, _ in JAVA_VECTORS])
def test_the_reference_murmur2_matches_the_java_clients_own_test_vectors(key: bytes, expected: int) -> None:
    assert java_murmur2(key) == expected


def test_the_default_partitioner_is_the_java_clients() -> None:
    assert KafkaProducerConfig().partitioner == "murmur2_random"
    assert KafkaProducerConfig().to_confluent()["partitioner"] == "murmur2_random"
    for name in PARTITIONERS:
        assert KafkaProducerConfig(partitioner=name).to_confluent()["partitioner"] == name  # type: ignore[arg-type]


def test_an_unknown_partitioner_is_refused_naming_the_choices() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown partitioner 'crc32'.*murmur2_random"):
        KafkaProducerConfig(partitioner="crc32")  # type: ignore[arg-type]


def test_the_partitioner_has_one_owner_the_field() -> None:
    """The pass-through cannot set it: refused when built, and when used if added later."""
    with pytest.raises(ConfigurationError, match=r"KafkaProducerConfig\.partitioner"):
        KafkaProducerConfig(librdkafka={"partitioner": "consistent_random"})
    config = KafkaProducerConfig()
    config.librdkafka["partitioner"] = "consistent_random"  # the dict itself is mutable
    with pytest.raises(ConfigurationError, match=r"KafkaProducerConfig\.partitioner"):
        config.to_confluent()


PASS_THROUGHS: dict[str, Callable[[dict[str, Any]], object]] = {
    "KafkaClientConfig.extra": lambda props: KafkaClientConfig("b:9092", extra=props),
    "KafkaProducerConfig.librdkafka": lambda props: KafkaProducerConfig(librdkafka=props),
    "KafkaConsumerConfig.librdkafka": lambda props: KafkaConsumerConfig("g", librdkafka=props),
}

PARTITIONER_SETTINGS = [
    {"default.topic.config": {"partitioner": "consistent_random"}},
    {"default.topic.config": {" Partitioner ": "crc32"}},
    {"default.topic.config": {"partitioner_cb": "mine"}},
    {"default.topic.config": {"default.topic.config": {"partitioner": "fnv1a"}}},
    {"partitioner": "consistent_random"},
    {"PARTITIONER_CB": "mine"},
]


def test_confluent_kafka_lets_a_nested_partitioner_replace_the_top_level_one() -> None:
    """Why the nested dict matters: its partitioner reaches librdkafka over the top-level one."""
    with pytest.raises(KafkaException, match=r"partitioner.*not-a-partitioner"):
        Producer(
            {
                "bootstrap.servers": "127.0.0.1:1",
                "partitioner": "murmur2_random",
                "default.topic.config": {"partitioner": "not-a-partitioner"},
            }
        )


@pytest.mark.parametrize("where", sorted(PASS_THROUGHS))
@pytest.mark.parametrize("props", PARTITIONER_SETTINGS, ids=repr)
def test_no_pass_through_sets_the_partitioner_at_any_depth(where: str, props: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=r"KafkaProducerConfig\.partitioner"):
        PASS_THROUGHS[where](props)


def test_a_nested_partitioner_added_after_construction_is_refused_when_used() -> None:
    config = KafkaProducerConfig(librdkafka={"default.topic.config": {"message.timeout.ms": 1000}})
    config.librdkafka["default.topic.config"]["partitioner"] = "consistent_random"
    with pytest.raises(ConfigurationError, match=r"KafkaProducerConfig\.partitioner"):
        config.to_confluent()


def test_sticky_partitioning_of_keyless_messages_stays_tunable() -> None:
    """It groups only messages without a key, which go to a random partition either way."""
    nested = {"default.topic.config": {"sticky.partitioning.linger.ms": 0}}
    config = KafkaProducerConfig(librdkafka={"sticky.partitioning.linger.ms": 10, **nested})
    assert config.to_confluent()["sticky.partitioning.linger.ms"] == 10
    assert config.to_confluent()["partitioner"] == "murmur2_random"
