"""The producer partitions keys as the Java client does, unless told otherwise."""

from __future__ import annotations

import pytest

from producers._kafka_config import PARTITIONERS
from producers.kafka import KafkaProducerConfig
from shardline.errors import ConfigurationError
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
    """The pass-through cannot set it (refused), nor override it after construction."""
    with pytest.raises(ConfigurationError, match=r"KafkaProducerConfig\.partitioner"):
        KafkaProducerConfig(librdkafka={"partitioner": "consistent_random"})
    config = KafkaProducerConfig()
    config.librdkafka["partitioner"] = "consistent_random"  # the dict itself is mutable
    assert config.to_confluent()["partitioner"] == "murmur2_random"
