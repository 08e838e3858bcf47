"""Every Kafka error code Shardline knows maps to a class of the shared tree."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from shardline.errormap import from_kafka_error, kafka_error_classes
from shardline.errors import (
    AuthenticationError,
    DeliveryError,
    MessageTooLargeError,
    ResourceNotFoundError,
    ServiceError,
    ShardlineError,
    TransientServiceError,
)


@pytest.mark.parametrize(("code", "cls"), sorted(kafka_error_classes().items()))
def test_each_listed_code_maps_to_its_class(code: int, cls: type[ShardlineError]) -> None:
    error = from_kafka_error(KafkaError(code))
    assert type(error) is cls
    if isinstance(error, ServiceError):
        assert error.service == "kafka"
        assert error.code == KafkaError(code).name()


def test_named_cases() -> None:
    assert isinstance(from_kafka_error(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)), MessageTooLargeError)
    assert isinstance(from_kafka_error(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)), ResourceNotFoundError)
    assert isinstance(
        from_kafka_error(KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED)), AuthenticationError
    )
    assert isinstance(from_kafka_error(KafkaError(KafkaError._MSG_TIMED_OUT)), DeliveryError)


def test_fatal_errors_are_never_retriable() -> None:
    error = from_kafka_error(KafkaError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, fatal=True))
    assert error.retriable is False
    assert "fatal" in str(error)


def test_unlisted_codes_follow_librdkafkas_retriable_verdict() -> None:
    retriable = from_kafka_error(KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS, retriable=True))
    final = from_kafka_error(KafkaError(KafkaError.INVALID_REQUIRED_ACKS))
    assert isinstance(retriable, TransientServiceError)
    assert retriable.retriable
    assert type(final) is ServiceError
    assert not final.retriable
