"""The one place where botocore, aiohttp and confluent-kafka errors become Shardline errors.

Call sites wrap a client call in one of the boundaries, :func:`map_aws_errors` or
:func:`map_kafka_errors` (context managers, in the spirit of httpx's
``map_httpcore_exceptions``), and from then on reason only about :mod:`shardline.errors`
classes and their ``retriable`` flag; nobody else compares error-code strings or translates
an exception by hand (a test walks the code base for that).  Programming errors (TypeError,
AttributeError, KeyError...) pass through the boundaries untouched: a bug must never look
like a non-retriable service error.  The tables below are the whole policy: the unit tests
iterate over them, so a code added here without a test case fails the suite.

Messages are built from the error code and the service's own message, cut to one line of
bounded length, with the user info of any URL in them hidden; authentication messages are
cut before AWS echoes the canonical request (which may carry a session token).  The
original exception stays reachable as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType, TracebackType
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from botocore.eventstream import ParserError as EventStreamFrameError
from botocore.exceptions import (
    BaseEndpointResolverError,
    BotoCoreError,
    ClientError,
    ConfigNotFound,
    ConfigParseError,
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    InvalidConfigError,
    InvalidEndpointConfigurationError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    UnknownCredentialError,
    UnknownRegionError,
)
from botocore.parsers import ResponseParserError

from shardline.endpoints import redact_urls_in
from shardline.errors import (
    AccessDeniedError,
    AuthenticationError,
    BufferFullError,
    ConditionalCheckFailedError,
    ConfigurationError,
    DeliveryError,
    ExpiredIteratorError,
    ExpiredNextTokenError,
    FatalKafkaError,
    InvalidRequestError,
    KmsError,
    LeaseLostError,
    MessageTooLargeError,
    ResourceInUseError,
    ResourceNotFoundError,
    ServiceError,
    ShardlineError,
    ThrottledError,
    TransientServiceError,
    ValidationError,
)

__all__ = [
    "AWS_ERROR_CODES",
    "KAFKA_ERROR_CODES",
    "TRANSACTION_CANCELLATION_PRIORITY",
    "from_botocore",
    "from_error_code",
    "from_kafka_error",
    "kafka_error_classes",
    "map_aws_errors",
    "map_client_creation_errors",
    "map_kafka_errors",
    "not_a_kinesis_answer",
    "translate",
]

_MAX_MESSAGE_CHARS: Final = 240

AWS_ERROR_CODES: Final[Mapping[str, type[ShardlineError]]] = MappingProxyType(
    {
        # --- rate limits: back off and retry -----------------------------------------------
        "ProvisionedThroughputExceededException": ThrottledError,  # Kinesis, DynamoDB
        "ProvisionedThroughputExceeded": ThrottledError,  # DynamoDB cancellation reason
        "ThrottlingException": ThrottledError,  # Firehose, Timestream, DynamoDB, STS
        "Throttling": ThrottledError,  # query-protocol services (CloudWatch, STS)
        "ThrottlingError": ThrottledError,  # DynamoDB cancellation reason
        "ThrottledException": ThrottledError,
        "TooManyRequestsException": ThrottledError,
        "RequestThrottled": ThrottledError,
        "RequestThrottledException": ThrottledError,
        "RequestLimitExceeded": ThrottledError,  # DynamoDB account-level throughput
        "LimitExceededException": ThrottledError,  # Kinesis/DynamoDB concurrent control-plane calls
        "KMSThrottlingException": ThrottledError,
        "SlowDown": ThrottledError,  # S3
        # Firehose's throttle: a PutRecordBatch entry carries it when the stream's limits are
        # exceeded (its API reference: "back off and retry ... throughput limits ... may have
        # been exceeded").  As a transient failure it counted against an entry's attempts, so
        # a sustained throttle dead-lettered healthy records after entry_attempts sends.
        "ServiceUnavailableException": ThrottledError,
        # --- the service failed; the request may or may not have been applied -------------
        "InternalFailure": TransientServiceError,  # Kinesis PutRecords entries
        "InternalFailureException": TransientServiceError,
        "InternalServerError": TransientServiceError,  # DynamoDB
        "InternalServerException": TransientServiceError,  # Timestream
        "InternalError": TransientServiceError,  # S3
        "ServiceUnavailable": TransientServiceError,
        "ServiceFailure": TransientServiceError,
        "RequestTimeout": TransientServiceError,
        "RequestTimeoutException": TransientServiceError,
        "InvalidEndpointException": TransientServiceError,  # Timestream: rediscover endpoint
        # --- busy, retry later ---------------------------------------------------------------
        "ResourceInUseException": ResourceInUseError,
        "ConcurrentModificationException": ResourceInUseError,  # Firehose
        "TransactionConflictException": ResourceInUseError,  # DynamoDB
        "TransactionConflict": ResourceInUseError,  # DynamoDB cancellation reason
        "TransactionInProgressException": ResourceInUseError,
        # --- iterators and tokens --------------------------------------------------------
        "ExpiredIteratorException": ExpiredIteratorError,
        "ExpiredNextTokenException": ExpiredNextTokenError,
        # --- missing resources -------------------------------------------------------------
        "ResourceNotFoundException": ResourceNotFoundError,
        "NoSuchBucket": ResourceNotFoundError,
        "NoSuchKey": ResourceNotFoundError,
        # --- invalid requests and rejected records ----------------------------------------
        "InvalidArgumentException": InvalidRequestError,  # Kinesis
        "ValidationException": InvalidRequestError,
        "ValidationError": InvalidRequestError,  # query protocol; DynamoDB cancellation reason
        "InvalidParameterException": InvalidRequestError,
        "InvalidParameterValue": InvalidRequestError,
        "InvalidParameterValueException": InvalidRequestError,
        "InvalidRequestException": InvalidRequestError,
        "SerializationException": InvalidRequestError,
        "RejectedRecordsException": InvalidRequestError,  # Timestream WriteRecords
        "ItemCollectionSizeLimitExceededException": InvalidRequestError,  # DynamoDB
        "ItemCollectionSizeLimitExceeded": InvalidRequestError,  # DynamoDB cancellation reason
        "IdempotentParameterMismatchException": InvalidRequestError,
        # --- conditional writes ------------------------------------------------------------
        "ConditionalCheckFailedException": ConditionalCheckFailedError,
        "ConditionalCheckFailed": ConditionalCheckFailedError,  # DynamoDB cancellation reason
        "PreconditionFailed": ConditionalCheckFailedError,  # S3 If-None-Match / If-Match
        "TransactionCanceledException": ConditionalCheckFailedError,  # refined by its reasons
        # --- identity and permissions --------------------------------------------------------
        "AccessDeniedException": AccessDeniedError,
        "AccessDenied": AccessDeniedError,
        "UnauthorizedOperation": AccessDeniedError,
        "UnrecognizedClientException": AuthenticationError,
        "InvalidClientTokenId": AuthenticationError,
        "ExpiredTokenException": AuthenticationError,
        "ExpiredToken": AuthenticationError,
        "InvalidSignatureException": AuthenticationError,
        "SignatureDoesNotMatch": AuthenticationError,
        "IncompleteSignature": AuthenticationError,
        "MissingAuthenticationToken": AuthenticationError,
        "InvalidAccessKeyId": AuthenticationError,
        # --- KMS-encrypted streams ------------------------------------------------------------
        "KMSAccessDeniedException": KmsError,
        "KMSDisabledException": KmsError,
        "KMSInvalidStateException": KmsError,
        "KMSNotFoundException": KmsError,
        "KMSOptInRequired": KmsError,
        "KMSInvalidKeyUsageException": KmsError,
        "InvalidKMSResourceException": KmsError,  # Firehose
    }
)
"""AWS error code (ClientError ``Code``, PutRecords/Firehose ``ErrorCode``, DynamoDB
cancellation reason ``Code``) -> Shardline class.  Unknown codes give :class:`ServiceError`,
retriable only when the HTTP status was 5xx."""

TRANSACTION_CANCELLATION_PRIORITY: Final = (
    "ConditionalCheckFailed",
    "ValidationError",
    "ItemCollectionSizeLimitExceeded",
    "TransactionConflict",
    "ProvisionedThroughputExceeded",
    "ThrottlingError",
)
"""Which DynamoDB cancellation reason decides the class of a TransactionCanceledException
when several items failed: a failed condition is final and outranks a retriable conflict."""

KAFKA_ERROR_CODES: Final[Mapping[str, type[ShardlineError]]] = MappingProxyType(
    {
        # not delivered within message.timeout.ms: it may or may not have been written
        "_MSG_TIMED_OUT": TransientServiceError,
        # purged from the queue when the client was closed: never sent
        "_PURGE_QUEUE": DeliveryError,
        "_PURGE_INFLIGHT": DeliveryError,
        # a request timed out or the connection failed: may or may not have been written
        "_TIMED_OUT": TransientServiceError,
        "_TIMED_OUT_QUEUE": TransientServiceError,
        "REQUEST_TIMED_OUT": TransientServiceError,
        "_TRANSPORT": TransientServiceError,
        "_ALL_BROKERS_DOWN": TransientServiceError,
        "NETWORK_EXCEPTION": TransientServiceError,
        "NOT_LEADER_FOR_PARTITION": TransientServiceError,
        "LEADER_NOT_AVAILABLE": TransientServiceError,
        "NOT_ENOUGH_REPLICAS": TransientServiceError,
        "NOT_ENOUGH_REPLICAS_AFTER_APPEND": TransientServiceError,
        "KAFKA_STORAGE_ERROR": TransientServiceError,
        "COORDINATOR_NOT_AVAILABLE": TransientServiceError,
        "NOT_COORDINATOR": TransientServiceError,
        "COORDINATOR_LOAD_IN_PROGRESS": TransientServiceError,
        "REBALANCE_IN_PROGRESS": TransientServiceError,
        "THROTTLING_QUOTA_EXCEEDED": ThrottledError,
        "_QUEUE_FULL": BufferFullError,
        # the message itself is unacceptable
        "MSG_SIZE_TOO_LARGE": MessageTooLargeError,
        "INVALID_MSG_SIZE": MessageTooLargeError,
        "RECORD_LIST_TOO_LARGE": MessageTooLargeError,
        "INVALID_MSG": InvalidRequestError,
        "INVALID_RECORD": InvalidRequestError,
        "POLICY_VIOLATION": ConfigurationError,
        "_INVALID_ARG": ConfigurationError,
        "INVALID_CONFIG": ConfigurationError,
        # missing topics and partitions
        "UNKNOWN_TOPIC_OR_PART": ResourceNotFoundError,
        "_UNKNOWN_TOPIC": ResourceNotFoundError,
        "_UNKNOWN_PARTITION": ResourceNotFoundError,
        "UNKNOWN_TOPIC_ID": ResourceNotFoundError,
        # permissions and authentication (SASL/SCRAM, MSK IAM)
        "TOPIC_AUTHORIZATION_FAILED": AccessDeniedError,
        "GROUP_AUTHORIZATION_FAILED": AccessDeniedError,
        "CLUSTER_AUTHORIZATION_FAILED": AccessDeniedError,
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED": AccessDeniedError,
        "SASL_AUTHENTICATION_FAILED": AuthenticationError,
        "_AUTHENTICATION": AuthenticationError,
        "_SSL": AuthenticationError,
        # idempotence / transaction state lost: the producer must be recreated
        "OUT_OF_ORDER_SEQUENCE_NUMBER": FatalKafkaError,
        "DUPLICATE_SEQUENCE_NUMBER": FatalKafkaError,
        "INVALID_PRODUCER_EPOCH": FatalKafkaError,
        "PRODUCER_FENCED": FatalKafkaError,
        "UNKNOWN_PRODUCER_ID": FatalKafkaError,
        "INVALID_PRODUCER_ID_MAPPING": FatalKafkaError,
        "INVALID_TXN_STATE": FatalKafkaError,
        "_FENCED": FatalKafkaError,
        "_FATAL": FatalKafkaError,
        "_GAPLESS_GUARANTEE": FatalKafkaError,
        "_INCONSISTENT": FatalKafkaError,
        # the group moved on: this member's partitions belong to someone else now
        "UNKNOWN_MEMBER_ID": LeaseLostError,
        "ILLEGAL_GENERATION": LeaseLostError,
        "FENCED_INSTANCE_ID": LeaseLostError,
        "_ASSIGNMENT_LOST": LeaseLostError,
        "_MAX_POLL_EXCEEDED": LeaseLostError,
    }
)
"""confluent_kafka.KafkaError constant name -> Shardline class.  Codes not listed fall back on
librdkafka's own verdict: ``fatal()`` -> FatalKafkaError, ``retriable()`` -> TransientServiceError,
otherwise ServiceError."""

_CONFIGURATION_ERRORS: tuple[type[BaseException], ...] = (
    ProfileNotFound,  # AWS_PROFILE names a profile the config files lack
    ConfigNotFound,
    ConfigParseError,
    InvalidConfigError,
    InvalidRegionError,  # AWS_REGION="us east"
    UnknownRegionError,
    BaseEndpointResolverError,  # no endpoint for this service in this region
    InvalidEndpointConfigurationError,
    UnknownCredentialError,
)
"""botocore errors that say the AWS configuration (profile, region, config files) is wrong.
Their messages name only the setting (a profile, a region, a file path), never a secret, so
they are kept: "ProfileNotFound" alone does not say which profile."""

_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,  # EndpointConnectionError, ConnectTimeoutError, SSLError, ProxyConnectionError
    HTTPClientError,  # ConnectionClosedError, ReadTimeoutError, ResponseStreamingError
    IncompleteReadError,
    TimeoutError,
    OSError,
)


def _aiohttp_errors() -> tuple[type[BaseException], ...]:
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - aiobotocore depends on aiohttp
        return ()
    return (aiohttp.ClientError,)


_AIOHTTP_ERRORS: Final = _aiohttp_errors()


def _one_line(message: str, *, authentication: bool = False) -> str:
    if authentication:
        # InvalidSignatureException echoes the canonical request, headers and all.
        message = message.split("The Canonical String", 1)[0]
    message = message.strip().splitlines()[0] if message.strip() else ""
    # botocore quotes an endpoint it cannot use ("Invalid endpoint: https://user:pw@...")
    message = redact_urls_in(message)
    if len(message) > _MAX_MESSAGE_CHARS:
        message = message[: _MAX_MESSAGE_CHARS - 3] + "..."
    return message


def _build(
    cls: type[ShardlineError],
    code: str,
    message: str,
    service: str,
    *,
    retriable: bool | None = None,
) -> ShardlineError:
    text = f"{code}: {message}" if message else code
    if service:
        text = f"{service}: {text}"
    if issubclass(cls, ServiceError):
        return cls(text, code=code, service=service, retriable=retriable)
    return cls(text, retriable=retriable)


def from_error_code(code: str, message: object = "", *, service: str = "") -> ShardlineError:
    """The error for a per-entry code (PutRecords/Firehose ``ErrorCode``, DynamoDB reasons...).

    Unknown codes give a non-retriable :class:`ServiceError` that keeps the code.  ``message``
    is the answer's own member, untrusted: botocore passes a JSON number or list in a string
    member through as it is, and one such ``ErrorMessage`` raised ``AttributeError`` here,
    which killed the request task and with it every pending record.  Only a str is kept.
    """
    cls = AWS_ERROR_CODES.get(code, ServiceError)
    text = message if isinstance(message, str) else ""
    return _build(cls, code, _one_line(text, authentication=cls is AuthenticationError), service)


def not_a_kinesis_answer(operation: str, missing: str) -> TransientServiceError:
    """The error for a 200 answer without ``missing``, a member every answer to ``operation`` has.

    botocore parses a 200 body that is not a Kinesis answer (an HTML page from a wrong endpoint,
    a captive portal or a proxy; an empty object) into a response with none of the operation's
    members.  Read as data, that is an empty stream or a finished shard; it is a transient error
    instead, retried a bounded number of times where the call is.
    """
    return TransientServiceError(
        f"{operation} answered without {missing}: is the endpoint a Kinesis endpoint?"
    )


def _cancellation_code(response: Mapping[str, Any]) -> str | None:
    """The reason that decides a TransactionCanceledException, by priority."""
    reasons = {
        str(r.get("Code")) for r in response.get("CancellationReasons") or () if isinstance(r, Mapping)
    }
    for code in TRANSACTION_CANCELLATION_PRIORITY:
        if code in reasons:
            return code
    return None


def _from_client_error(exc: ClientError, service: str) -> ShardlineError:
    response: Mapping[str, Any] = exc.response or {}
    error = response.get("Error") or {}
    code = str(error.get("Code") or "Unknown")
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    cls = AWS_ERROR_CODES.get(code)
    if code == "TransactionCanceledException":
        reason = _cancellation_code(response)
        cls = AWS_ERROR_CODES[reason] if reason is not None else ServiceError
    if cls is None:
        if status == 429:
            cls = ThrottledError
        elif status >= 500:
            cls = TransientServiceError
        else:
            cls = ServiceError
    message = _one_line(str(error.get("Message") or ""), authentication=cls is AuthenticationError)
    return _build(cls, code, message, service)


def translate(exc: BaseException, *, service: str = "") -> ShardlineError | None:
    """The Shardline error for a client library's exception; ``None`` for anything else.

    ``None`` lets callers re-raise programming errors (TypeError, KeyError...) untouched.
    A :class:`ShardlineError` is returned as it is.
    """
    if isinstance(exc, ShardlineError):
        return exc
    mapped: ShardlineError
    if isinstance(exc, ClientError):  # includes EventStreamError from SubscribeToShard
        mapped = _from_client_error(exc, service)
    elif isinstance(exc, ParamValidationError):
        mapped = ValidationError(_one_line(str(exc)))
    elif isinstance(exc, NoCredentialsError | PartialCredentialsError | NoRegionError):
        mapped = ConfigurationError(f"{type(exc).__name__}: configure AWS credentials and region")
    elif isinstance(exc, _CONFIGURATION_ERRORS):
        mapped = ConfigurationError(f"{type(exc).__name__}: {_one_line(str(exc))}")
    elif isinstance(exc, _TRANSPORT_ERRORS + _AIOHTTP_ERRORS):
        where = _endpoint_of(exc)
        mapped = TransientServiceError(
            f"{service + ': ' if service else ''}{type(exc).__name__}"
            f"{' at ' + where if where else ''} (connection or timeout)",
            code=type(exc).__name__,
            service=service,
        )
    elif isinstance(exc, EventStreamFrameError):
        # An event-stream frame (SubscribeToShard) that fails its length or CRC checks, or a
        # stream without its initial response: bytes cut or corrupted on the way, a broken
        # stream to open again.  botocore's frame errors derive from Exception alone, so they
        # went through as programming errors and stopped the run.
        mapped = TransientServiceError(
            f"{service + ': ' if service else ''}{type(exc).__name__} (broken event stream)",
            code=type(exc).__name__,
            service=service,
        )
    elif isinstance(exc, ResponseParserError):
        # An answer (or a SubscribeToShard event) whose frames are whole but whose payload is
        # not the shape the operation defines: untrusted bytes, not a bug of the caller's, so
        # the request is retried (a stream re-subscribed) a bounded number of times.
        mapped = TransientServiceError(
            f"{service + ': ' if service else ''}{type(exc).__name__} (an answer that does not parse)",
            code=type(exc).__name__,
            service=service,
        )
    elif isinstance(exc, BotoCoreError):
        mapped = ServiceError(f"{type(exc).__name__}", code=type(exc).__name__, service=service)
    else:
        return None
    mapped.__cause__ = exc
    return mapped


def from_botocore(exc: BaseException, *, service: str = "") -> ShardlineError:
    """The Shardline error for anything an AWS client call raised.

    ClientError by error code (HTTP 5xx and 429 when the code is unknown), connection
    failures, timeouts (botocore, aiohttp, OS), broken event-stream frames and answers that
    do not parse (``ResponseParserError``) as :class:`TransientServiceError`; anything
    else as a non-retriable :class:`ServiceError` naming only the exception type.
    """
    mapped = translate(exc, service=service)
    if mapped is None:
        mapped = ServiceError(f"unexpected {type(exc).__name__}", code=type(exc).__name__, service=service)
        mapped.__cause__ = exc
    return mapped


_kafka_codes: dict[int, type[ShardlineError]] | None = None


def kafka_error_classes() -> dict[int, type[ShardlineError]]:
    """:data:`KAFKA_ERROR_CODES` keyed by numeric code (confluent-kafka is imported on first use).

    Names this librdkafka build does not know are left out.
    """
    global _kafka_codes
    if _kafka_codes is None:
        from confluent_kafka import KafkaError  # optional extra

        _kafka_codes = {
            getattr(KafkaError, name): cls
            for name, cls in KAFKA_ERROR_CODES.items()
            if hasattr(KafkaError, name)
        }
    return dict(_kafka_codes)


def from_kafka_error(error: object) -> ShardlineError:
    """The Shardline error for a ``confluent_kafka.KafkaError`` (or a KafkaException wrapping one)."""
    if isinstance(error, ShardlineError):
        return error
    cause = error if isinstance(error, BaseException) else None
    args = getattr(error, "args", None)
    if cause is not None and args and hasattr(args[0], "code"):
        error = args[0]  # KafkaException(KafkaError)
    code_of = getattr(error, "code", None)
    if not callable(code_of):
        unknown = ServiceError(f"unexpected {type(error).__name__}", service="kafka")
        unknown.__cause__ = cause
        return unknown
    code = int(code_of())
    name = str(error.name())  # type: ignore[attr-defined]
    reason = _one_line(str(error.str()))  # type: ignore[attr-defined]
    fatal = bool(error.fatal())  # type: ignore[attr-defined]
    if _kafka_codes is None:
        kafka_error_classes()
    assert _kafka_codes is not None
    cls = _kafka_codes.get(code)
    if cls is None:
        if fatal:
            cls = FatalKafkaError
        elif error.retriable():  # type: ignore[attr-defined]
            cls = TransientServiceError
        else:
            cls = ServiceError
    elif fatal and cls is not FatalKafkaError:
        cls = FatalKafkaError  # librdkafka says the instance is unusable, whatever the code
    if cls is FatalKafkaError:
        reason = f"{reason} (fatal: the client must be recreated)"
    mapped = _build(cls, name, reason, "kafka", retriable=False if fatal else None)
    mapped.__cause__ = cause
    return mapped


class _Boundary:
    """A context manager that re-raises client-library errors as Shardline errors.

    A class rather than a generator-based context manager: it costs two plain method calls,
    so it can wrap every request of a busy reader.
    """

    __slots__ = ("_kafka", "_service")

    def __init__(self, service: str, kafka: bool) -> None:
        self._service = service
        self._kafka = kafka

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if exc is None or isinstance(exc, ShardlineError) or not isinstance(exc, Exception):
            return False  # nothing raised, already mapped, or cancellation / exit: untouched
        mapped = self._map(exc)
        if mapped is None:
            return False  # a programming error: let it through as it is
        raise mapped from exc

    def _map(self, exc: Exception) -> ShardlineError | None:
        return _translate_kafka(exc) if self._kafka else translate(exc, service=self._service)


def _endpoint_of(exc: BaseException) -> str:
    """``scheme://host:port`` of the endpoint a transport error was trying, or ``""``.

    "EndpointConnectionError (connection or timeout)" alone left a user with a mistyped
    ``AWS_ENDPOINT_URL_KINESIS`` guessing which endpoint was tried.  Only the scheme, host and
    port are kept: a URL's user info, path and query can carry credentials or signatures.
    """
    url = getattr(exc, "kwargs", {}).get("endpoint_url") if isinstance(exc, BotoCoreError) else None
    if isinstance(url, str):
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError:
            return ""
        if parts.scheme and host:
            host = f"[{host}]" if ":" in host else host
            return f"{parts.scheme}://{host}{f':{port}' if port else ''}"
        return ""
    host, port = getattr(exc, "host", None), getattr(exc, "port", None)  # aiohttp's connector errors
    if isinstance(host, str) and host and isinstance(port, int):
        return f"{host}:{port}"
    return ""


def map_aws_errors(service: str = "") -> _Boundary:
    """Wrap AWS client calls: botocore / aiobotocore / aiohttp errors become Shardline errors.

    ::

        with map_aws_errors("kinesis"):
            response = await client.get_records(ShardIterator=iterator)

    ClientError maps by error code (HTTP 5xx and 429 when the code is unknown), connection
    failures and timeouts to :class:`~shardline.errors.TransientServiceError`.  Anything that
    is not a client-library error propagates unchanged.
    """
    return _Boundary(service, kafka=False)


class _ClientCreationBoundary(_Boundary):
    """Re-raises what building an AWS client raised as a :class:`ConfigurationError`."""

    __slots__ = ()

    def __init__(self, service: str) -> None:
        super().__init__(service, kafka=False)

    def _map(self, exc: Exception) -> ShardlineError | None:
        mapped = translate(exc, service=self._service)
        if mapped is None and isinstance(exc, ValueError):
            # botocore's "Invalid endpoint: 127.0.0.1:4567" (a URL without its scheme)
            variable = "AWS_ENDPOINT_URL_" + self._service.upper().replace("-", "_")
            mapped = ConfigurationError(
                f"cannot create the {self._service} client: {_one_line(str(exc))}; an endpoint is "
                f"a URL with its scheme (http://127.0.0.1:4567): check {variable}, "
                "AWS_ENDPOINT_URL and endpoint_url"
            )
        return mapped


def map_client_creation_errors(service: str) -> _ClientCreationBoundary:
    """Wrap the building of an AWS client (not its calls): what fails there is configuration.

    botocore raises a plain ``ValueError`` for an endpoint URL it cannot use (``AWS_ENDPOINT_URL_KINESIS=
    127.0.0.1:4567``, the scheme forgotten) and ``ProfileNotFound`` or ``InvalidRegionError`` for
    a profile or region it cannot use; each becomes a :class:`ConfigurationError` naming the
    setting, so a command reports it in one line with exit status 2 instead of a traceback.
    Around client calls use :func:`map_aws_errors`, which lets ``ValueError`` through.
    """
    return _ClientCreationBoundary(service)


def map_kafka_errors() -> _Boundary:
    """Wrap confluent-kafka calls: ``KafkaException`` becomes the Shardline error of its code."""
    return _Boundary("kafka", kafka=True)


def _translate_kafka(exc: BaseException) -> ShardlineError | None:
    try:
        from confluent_kafka import KafkaException  # optional extra
    except ImportError:  # pragma: no cover - without the extra nothing raises KafkaException
        return None
    return from_kafka_error(exc) if isinstance(exc, KafkaException) else None
