"""No pass-through dict can downgrade Kafka security, and none shows a secret in its repr."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from consumers.kafka import KafkaConsumerConfig
from producers.kafka import KafkaProducerConfig
from shardline.errors import ConfigurationError
from shardline.kafka_config import KafkaClientConfig, MskIam, MskIamTokenProvider, Scram

DOWNGRADES = [
    {"security.protocol": "SASL_PLAINTEXT"},
    {"Security.Protocol": "PLAINTEXT"},
    {"sasl.password": "hunter2-secret"},
    {"sasl.mechanism": "PLAIN"},
    {"ssl.ca.location": "/tmp/evil.pem"},
    {"ssl.endpoint.identification.algorithm": "none"},
    {"enable.ssl.certificate.verification": False},
    {"enable.sasl.oauthbearer.unsecure.jwt": True},
    {"oauth_cb": lambda config: ("token", 0.0)},
    {"https.ca.location": "/tmp/evil.pem"},
]

BUILDERS: dict[str, Callable[[dict[str, Any]], object]] = {
    "KafkaClientConfig.extra": lambda props: KafkaClientConfig("b:9098", extra=props),
    "KafkaProducerConfig.librdkafka": lambda props: KafkaProducerConfig(librdkafka=props),
    "KafkaConsumerConfig.librdkafka": lambda props: KafkaConsumerConfig("g", librdkafka=props),
}


@pytest.mark.parametrize("where", sorted(BUILDERS))
@pytest.mark.parametrize("props", DOWNGRADES, ids=lambda props: next(iter(props)))
def test_every_pass_through_dict_refuses_security_keys(where: str, props: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="security setting") as raised:
        BUILDERS[where](props)
    assert "hunter2-secret" not in str(raised.value)


def _iam() -> MskIam:
    return MskIam(MskIamTokenProvider("us-east-1", signer=lambda region: ("tok", 0)))


def test_a_dict_changed_after_construction_is_refused_when_used() -> None:
    producer = KafkaProducerConfig(librdkafka={"linger.ms": 1})
    producer.librdkafka["security.protocol"] = "SASL_PLAINTEXT"
    with pytest.raises(ConfigurationError):
        producer.to_confluent()
    consumer = KafkaConsumerConfig("g", librdkafka={})
    consumer.librdkafka["enable.ssl.certificate.verification"] = False
    with pytest.raises(ConfigurationError):
        consumer.to_confluent()


def test_tuning_keys_still_pass_and_the_security_value_decides() -> None:
    client = KafkaClientConfig("b:9098", security=_iam(), extra={"socket.keepalive.enable": True})
    merged = {**client.to_confluent(), **KafkaProducerConfig(librdkafka={"linger.ms": 7}).to_confluent()}
    assert merged["security.protocol"] == "SASL_SSL" and merged["linger.ms"] == 7
    assert merged["enable.ssl.certificate.verification"] is True


def test_reprs_never_show_secrets() -> None:
    client = KafkaClientConfig("b:9096", security=Scram("user", "scram-secret-pw"))
    assert "scram-secret-pw" not in repr(client)
    assert "opaque-value" not in repr(KafkaProducerConfig(librdkafka={"client.rack": "opaque-value"}))
    assert "opaque-value" not in repr(KafkaConsumerConfig("g", librdkafka={"client.rack": "opaque-value"}))
