"""The one exception tree of Shardline.

Every error the project raises derives from :class:`ShardlineError` and says, through the
``retriable`` class attribute, whether trying the same operation again can succeed.  Errors
raised by botocore and confluent-kafka are translated into this tree in exactly one place,
:mod:`shardline.errormap`, so callers never compare error-code strings themselves.

Messages never contain record payloads, credentials or tokens.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "AggregateRefusedError",
    "AuthenticationError",
    "BackgroundTaskError",
    "BufferFullError",
    "CheckpointError",
    "ClosedError",
    "ConditionalCheckFailedError",
    "ConfigurationError",
    "DeliveryError",
    "ExpiredIteratorError",
    "ExpiredNextTokenError",
    "FatalKafkaError",
    "InvalidDataError",
    "InvalidExplicitHashKeyError",
    "InvalidPartitionKeyError",
    "InvalidRequestError",
    "KmsError",
    "LeaseLostError",
    "LeaseRowError",
    "MessageTooLargeError",
    "MissingResourceError",
    "RecordTooLargeError",
    "ResourceInUseError",
    "ResourceNotFoundError",
    "SerializationError",
    "ServiceError",
    "ShardNotFoundError",
    "ShardlineError",
    "SinkError",
    "ThrottledError",
    "TransientServiceError",
    "ValidationError",
]


class ShardlineError(Exception):
    """Root of every error Shardline raises.

    ``retriable`` tells whether the same operation may succeed when tried again; retry
    policies consult it instead of matching on classes or error codes.
    """

    retriable: bool = False

    def __init__(self, message: str = "", *, retriable: bool | None = None) -> None:
        super().__init__(message)
        if retriable is not None:
            self.retriable = retriable


# --- bad input, raised before any network call ------------------------------------------------


class ValidationError(ShardlineError, ValueError):
    """Input that can never be accepted; raised before any network call."""


class InvalidPartitionKeyError(ValidationError):
    """Partition key empty, longer than 256 Unicode characters, or not a string."""


class InvalidExplicitHashKeyError(ValidationError):
    """Explicit hash key outside 0..2**128-1 or not an integer."""


class RecordTooLargeError(ValidationError):
    """A record (data plus partition key) over the stream's maximum record size."""


class MessageTooLargeError(ValidationError):
    """A Kafka message over the producer's or broker's message.max.bytes."""


class InvalidDataError(ValidationError, TypeError):
    """Record data that is not bytes and for which no serializer was given."""


class SerializationError(ValidationError):
    """A serializer could not turn an object into bytes (or bytes back into an object)."""


class AggregateRefusedError(ValidationError):
    """A KPL aggregate over the consumer's expansion bounds (inner partition key over 256
    characters, inner record over the stream's maximum record size, too many user records);
    it is dead-lettered whole instead of expanded."""


class ConfigurationError(ShardlineError):
    """Contradictory or missing configuration (found at construction, not at send time)."""


# --- client-side state ------------------------------------------------------------------------


class BufferFullError(ShardlineError):
    """The producer buffer is full and the caller asked not to wait."""

    retriable = True


class ClosedError(ShardlineError):
    """The producer, consumer or sink was already closed."""


class BackgroundTaskError(ShardlineError):
    """A task or thread a component runs in the background died; the component is unusable.

    ``__cause__`` is what killed it.  Every record still pending fails with this error and
    ``flush()``/``close()`` raise it, so a dead sender can never leave a caller waiting.
    """


class DeliveryError(ShardlineError):
    """A record could not be delivered within its attempts or time to live.

    ``__cause__`` carries the last underlying error; ``attempts`` how often it was tried.
    """

    def __init__(self, message: str, *, attempts: int = 0, retriable: bool | None = None) -> None:
        super().__init__(message, retriable=retriable)
        self.attempts = attempts


# --- errors reported by a service (AWS or Kafka) ----------------------------------------------


class ServiceError(ShardlineError):
    """An error answered by a remote service.  ``code`` is the service's own error code."""

    def __init__(
        self,
        message: str = "",
        *,
        code: str = "",
        service: str = "",
        retriable: bool | None = None,
    ) -> None:
        super().__init__(message, retriable=retriable)
        self.code = code
        self.service = service


class ThrottledError(ServiceError):
    """The service refused for rate reasons (ProvisionedThroughputExceeded, Throttling...)."""

    retriable = True


class TransientServiceError(ServiceError):
    """A 5xx, a dropped connection or a timeout: the request may or may not have been applied."""

    retriable = True


class ResourceInUseError(ServiceError):
    """The resource is busy (e.g. a stream being updated, a subscription still open)."""

    retriable = True


class ResourceNotFoundError(ServiceError):
    """The stream, table, topic or delivery stream does not exist."""


class MissingResourceError(ResourceNotFoundError):
    """A resource named on the command line does not exist, found before the command started.

    ``kind`` and ``name`` say what is missing, ``option`` which argument named it, so the one
    line a command prints is enough to fix it.
    """

    def __init__(self, kind: str, name: str, option: str, *, service: str = "") -> None:
        # A Kafka resource is found through its bootstrap servers; a region means nothing there.
        where = "the bootstrap servers" if service == "kafka" else "the region/endpoint"
        super().__init__(
            f"{kind} {name!r} (named by {option}) does not exist: create it, or fix the name and {where}",
            code="ResourceNotFound",
            service=service,
        )
        self.kind = kind
        self.name = name
        self.option = option


class AccessDeniedError(ServiceError):
    """The caller's identity may not do this; retrying cannot help."""


class AuthenticationError(ServiceError):
    """Credentials or tokens were rejected (expired, unknown, bad signature)."""


class KmsError(ServiceError):
    """KMS refused to encrypt or decrypt for the stream (disabled key, access denied, ...)."""


class ExpiredIteratorError(ServiceError):
    """A shard iterator expired; the reader must get a new one from its last checkpoint."""

    retriable = True


class ConditionalCheckFailedError(ServiceError):
    """A conditional write found a condition false (an idempotent or fenced write lost)."""


class ExpiredNextTokenError(ServiceError):
    """A pagination token (ListShards NextToken) expired; list again from the start."""

    retriable = True


class InvalidRequestError(ServiceError, ValidationError):
    """The service rejected the request or records as invalid; the same request cannot succeed.

    Also a :class:`ValidationError`, so one ``except`` catches bad input whether the client or
    the service noticed it (Timestream RejectedRecords, InvalidArgument, Kafka INVALID_RECORD).
    """


class FatalKafkaError(ServiceError):
    """librdkafka reported a fatal error (idempotence or transaction state lost, producer fenced).

    The client instance is unusable; it must be closed and a new one created.
    """


# --- shard routing ----------------------------------------------------------------------------


class ShardNotFoundError(ShardlineError):
    """No open shard of the known shard map owns a hash key (or no shard has that id).

    The map is stale (a split or merge happened since it was listed); refresh it from
    ListShards and route again.
    """


# --- consumer side ----------------------------------------------------------------------------


class CheckpointError(ShardlineError):
    """A checkpoint could not be read or written."""


class LeaseLostError(CheckpointError):
    """Another worker holds the lease now; this worker must stop processing the shard."""


class LeaseRowError(CheckpointError):
    """A lease-table row is not a lease any KCL or Shardline worker writes (a member of another
    type, a checkpoint that is no sequence number): another tool's row, or a corrupted one.

    Its shard is left alone, and the consumer reads the others: one bad row must not stop a
    stream.  Fix or delete the row; the next discovery round takes the shard.
    """


class SinkError(ShardlineError):
    """A sink could not write a batch and could not dead-letter what failed."""
