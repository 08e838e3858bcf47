"""The Kafka error translations the producer and consumer rely on."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from shardline.errormap import from_kafka_error
from shardline.errors import (
    AccessDeniedError,
    AuthenticationError,
    MessageTooLargeError,
    ResourceNotFoundError,
    ServiceError,
    TransientServiceError,
)


def test_named_cases() -> None:
    cases = {
        KafkaError.MSG_SIZE_TOO_LARGE: MessageTooLargeError,
        KafkaError.UNKNOWN_TOPIC_OR_PART: ResourceNotFoundError,
        KafkaError._UNKNOWN_TOPIC: ResourceNotFoundError,
        KafkaError.SASL_AUTHENTICATION_FAILED: AuthenticationError,
        KafkaError._AUTHENTICATION: AuthenticationError,
        KafkaError.TOPIC_AUTHORIZATION_FAILED: AccessDeniedError,
        KafkaError._MSG_TIMED_OUT: TransientServiceError,
    }
    for code, cls in cases.items():
        assert isinstance(from_kafka_error(KafkaError(code)), cls), KafkaError(code).name()


def test_fatal_errors_are_never_retriable() -> None:
    error = from_kafka_error(KafkaError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, fatal=True))
    assert isinstance(error, ServiceError)
    assert error.retriable is False


def test_a_kafka_exception_is_unwrapped() -> None:
    error = from_kafka_error(KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)))
    assert isinstance(error, ResourceNotFoundError)
