"""Third-party errors translated into Shardline's one exception tree, in one place.

Callers never compare error-code strings: they get a class from :mod:`shardline.errors`
whose ``retriable`` flag says whether trying again can help.

Kafka: :func:`from_kafka_error` maps a ``confluent_kafka.KafkaError`` by its code.  Codes not
listed fall back on librdkafka's own ``retriable()`` verdict.
"""

from __future__ import annotations

from typing import Any

from shardline.errors import (
    AccessDeniedError,
    AuthenticationError,
    ConfigurationError,
    DeliveryError,
    MessageTooLargeError,
    ResourceNotFoundError,
    ServiceError,
    ShardlineError,
    ThrottledError,
    TransientServiceError,
)

__all__ = ["from_kafka_error", "kafka_error_classes"]


def kafka_error_classes() -> dict[int, type[ShardlineError]]:
    """The code -> class table for Kafka errors (built lazily: confluent-kafka is an extra)."""
    from confluent_kafka import KafkaError as K

    return {
        K.MSG_SIZE_TOO_LARGE: MessageTooLargeError,
        K._MSG_TIMED_OUT: DeliveryError,
        K._PURGE_QUEUE: DeliveryError,
        K._PURGE_INFLIGHT: DeliveryError,
        K.UNKNOWN_TOPIC_OR_PART: ResourceNotFoundError,
        K._UNKNOWN_TOPIC: ResourceNotFoundError,
        K._UNKNOWN_PARTITION: ResourceNotFoundError,
        K.TOPIC_AUTHORIZATION_FAILED: AccessDeniedError,
        K.GROUP_AUTHORIZATION_FAILED: AccessDeniedError,
        K.CLUSTER_AUTHORIZATION_FAILED: AccessDeniedError,
        K.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: AccessDeniedError,
        K.SASL_AUTHENTICATION_FAILED: AuthenticationError,
        K._AUTHENTICATION: AuthenticationError,
        K._SSL: AuthenticationError,
        K.THROTTLING_QUOTA_EXCEEDED: ThrottledError,
        K.POLICY_VIOLATION: ConfigurationError,
        K._INVALID_ARG: ConfigurationError,
        K.INVALID_CONFIG: ConfigurationError,
        K._TRANSPORT: TransientServiceError,
        K._ALL_BROKERS_DOWN: TransientServiceError,
        K._TIMED_OUT: TransientServiceError,
        K.REQUEST_TIMED_OUT: TransientServiceError,
        K.NOT_ENOUGH_REPLICAS: TransientServiceError,
        K.NOT_ENOUGH_REPLICAS_AFTER_APPEND: TransientServiceError,
        K.NOT_LEADER_FOR_PARTITION: TransientServiceError,
        K.LEADER_NOT_AVAILABLE: TransientServiceError,
    }


_CLASSES: dict[int, type[ShardlineError]] | None = None


def from_kafka_error(err: Any) -> ShardlineError:
    """Translate a ``confluent_kafka.KafkaError`` (fatal ones, e.g. idempotence, never retriable)."""
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = kafka_error_classes()
    code = err.code()
    name = err.name()
    fatal = bool(err.fatal())
    message = f"kafka error {name}" + (" (fatal: the client must be recreated)" if fatal else "")
    cls = _CLASSES.get(code)
    retriable = False if fatal else None
    if cls is None:
        cls = TransientServiceError if err.retriable() and not fatal else ServiceError
    if issubclass(cls, ServiceError):
        return cls(message, code=name, service="kafka", retriable=retriable)
    return cls(message, retriable=retriable)
