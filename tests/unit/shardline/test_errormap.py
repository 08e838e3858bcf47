"""Every mapped error code, the fallbacks for unknown codes, transport failures, and redaction."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from botocore.eventstream import (
    ChecksumMismatch,
    InvalidHeadersLength,
    InvalidPayloadLength,
    NoInitialResponseError,
)
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    EventStreamError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError
from confluent_kafka import KafkaError, KafkaException

from shardline.errormap import (
    AWS_ERROR_CODES,
    KAFKA_ERROR_CODES,
    TRANSACTION_CANCELLATION_PRIORITY,
    from_botocore,
    from_error_code,
    from_kafka_error,
    kafka_error_classes,
    map_aws_errors,
    translate,
)
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

# The expected class of every code, written out independently of the table under test.
EXPECTED_AWS: dict[str, type[ShardlineError]] = {
    **dict.fromkeys(
        [
            "ProvisionedThroughputExceededException",
            "ProvisionedThroughputExceeded",
            "ThrottlingException",
            "Throttling",
            "ThrottlingError",
            "ThrottledException",
            "TooManyRequestsException",
            "RequestThrottled",
            "RequestThrottledException",
            "RequestLimitExceeded",
            "LimitExceededException",
            "KMSThrottlingException",
            "SlowDown",
            "ServiceUnavailableException",
        ],
        ThrottledError,
    ),
    **dict.fromkeys(
        [
            "InternalFailure",
            "InternalFailureException",
            "InternalServerError",
            "InternalServerException",
            "InternalError",
            "ServiceUnavailable",
            "ServiceFailure",
            "RequestTimeout",
            "RequestTimeoutException",
            "InvalidEndpointException",
        ],
        TransientServiceError,
    ),
    **dict.fromkeys(
        [
            "ResourceInUseException",
            "ConcurrentModificationException",
            "TransactionConflictException",
            "TransactionConflict",
            "TransactionInProgressException",
        ],
        ResourceInUseError,
    ),
    "ExpiredIteratorException": ExpiredIteratorError,
    "ExpiredNextTokenException": ExpiredNextTokenError,
    **dict.fromkeys(["ResourceNotFoundException", "NoSuchBucket", "NoSuchKey"], ResourceNotFoundError),
    **dict.fromkeys(
        [
            "InvalidArgumentException",
            "ValidationException",
            "ValidationError",
            "InvalidParameterException",
            "InvalidParameterValue",
            "InvalidParameterValueException",
            "InvalidRequestException",
            "SerializationException",
            "RejectedRecordsException",
            "ItemCollectionSizeLimitExceededException",
            "ItemCollectionSizeLimitExceeded",
            "IdempotentParameterMismatchException",
        ],
        InvalidRequestError,
    ),
    **dict.fromkeys(
        [
            "ConditionalCheckFailedException",
            "ConditionalCheckFailed",
            "PreconditionFailed",
            "TransactionCanceledException",
        ],
        ConditionalCheckFailedError,
    ),
    **dict.fromkeys(["AccessDeniedException", "AccessDenied", "UnauthorizedOperation"], AccessDeniedError),
    **dict.fromkeys(
        [
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "ExpiredTokenException",
            "ExpiredToken",
            "InvalidSignatureException",
            "SignatureDoesNotMatch",
            "IncompleteSignature",
            "MissingAuthenticationToken",
            "InvalidAccessKeyId",
        ],
        AuthenticationError,
    ),
    **dict.fromkeys(
        [
            "KMSAccessDeniedException",
            "KMSDisabledException",
            "KMSInvalidStateException",
            "KMSNotFoundException",
            "KMSOptInRequired",
            "KMSInvalidKeyUsageException",
            "InvalidKMSResourceException",
        ],
        KmsError,
    ),
}

RETRIABLE_CLASSES = {
    ThrottledError,
    TransientServiceError,
    ResourceInUseError,
    ExpiredIteratorError,
    ExpiredNextTokenError,
    BufferFullError,
}


def client_error(code: str, message: str = "boom", status: int = 400, **extra: Any) -> ClientError:
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
        **extra,
    }
    return ClientError(response, "PutRecords")  # type: ignore[arg-type]


def test_the_expected_table_and_the_real_table_list_the_same_codes() -> None:
    assert set(AWS_ERROR_CODES) == set(EXPECTED_AWS)


@pytest.mark.parametrize("code", sorted(AWS_ERROR_CODES))
def test_every_aws_code_maps_as_expected(code: str) -> None:
    expected = EXPECTED_AWS[code]
    reasons: dict[str, Any] = {}
    if code == "TransactionCanceledException":
        reasons = {"CancellationReasons": [{"Code": "None"}, {"Code": "ConditionalCheckFailed"}]}
    mapped = from_botocore(client_error(code, **reasons), service="kinesis")
    assert type(mapped) is expected
    assert mapped.retriable is (expected in RETRIABLE_CLASSES)
    assert isinstance(mapped, ServiceError)
    assert mapped.code == code and mapped.service == "kinesis"
    assert isinstance(mapped.__cause__, ClientError)
    per_entry = from_error_code(code, "entry failed", service="firehose")
    assert type(per_entry) is expected
    assert isinstance(per_entry, ServiceError) and per_entry.service == "firehose"


def test_unknown_codes() -> None:
    unknown = from_botocore(client_error("BrandNewException"))
    assert type(unknown) is ServiceError and not unknown.retriable and unknown.code == "BrandNewException"
    server_side = from_botocore(client_error("BrandNewException", status=503))
    assert type(server_side) is TransientServiceError and server_side.retriable
    too_many = from_botocore(client_error("BrandNewException", status=429))
    assert type(too_many) is ThrottledError
    per_entry = from_error_code("SomethingElse", "msg")
    assert type(per_entry) is ServiceError and not per_entry.retriable


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        (["None", "ConditionalCheckFailed", "TransactionConflict"], ConditionalCheckFailedError),
        (["None", "TransactionConflict"], ResourceInUseError),
        (["ThrottlingError"], ThrottledError),
        (["ProvisionedThroughputExceeded", "None"], ThrottledError),
        (["ValidationError"], InvalidRequestError),
        ([], ServiceError),
    ],
)
def test_transaction_cancellation_reasons_decide(reasons: list[str], expected: type[ShardlineError]) -> None:
    error = client_error("TransactionCanceledException", CancellationReasons=[{"Code": c} for c in reasons])
    mapped = from_botocore(error, service="dynamodb")
    assert type(mapped) is expected
    assert isinstance(mapped, ServiceError) and mapped.code == "TransactionCanceledException"


def test_every_cancellation_reason_in_the_priority_list_is_mapped() -> None:
    assert all(code in AWS_ERROR_CODES for code in TRANSACTION_CANCELLATION_PRIORITY)


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
        aiohttp.ClientConnectionError("reset"),
        aiohttp.ServerDisconnectedError(),
        TimeoutError(),
        ConnectionResetError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transport_failures_are_transient(exc: BaseException) -> None:
    mapped = from_botocore(exc, service="kinesis")
    assert type(mapped) is TransientServiceError and mapped.retriable
    assert mapped.__cause__ is exc


@pytest.mark.parametrize(
    ("exc", "named"),
    [
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:4567/"), "at http://127.0.0.1:4567 "),
        (
            ReadTimeoutError(endpoint_url="https://user:secret@kinesis.example:443/p?X-Amz-Signature=abc"),
            "at https://kinesis.example:443 ",
        ),
        (EndpointConnectionError(endpoint_url="http://[::1]:4567"), "at http://[::1]:4567 "),
        (EndpointConnectionError(endpoint_url="127.0.0.1:4567"), "EndpointConnectionError (connection"),
    ],
    ids=["plain", "credentials-dropped", "ipv6", "no-scheme"],
)
def test_transport_failures_name_the_endpoint_and_nothing_else_of_its_url(exc: Exception, named: str) -> None:
    """Which endpoint was tried (a mistyped AWS_ENDPOINT_URL_KINESIS), never the URL's user
    info, path or query (credentials, signatures)."""
    message = str(from_botocore(exc, service="kinesis"))
    assert named in message
    assert "secret" not in message and "Signature" not in message and "/p" not in message


def test_client_side_botocore_errors() -> None:
    assert type(from_botocore(ParamValidationError(report="bad"))) is ValidationError
    assert type(from_botocore(NoCredentialsError())) is ConfigurationError
    assert type(from_botocore(NoRegionError())) is ConfigurationError


@pytest.mark.parametrize(
    ("exc", "named"),
    [
        (ProfileNotFound(profile="telemetry"), "telemetry"),
        (InvalidRegionError(region_name="us east"), "us east"),
    ],
    ids=["ProfileNotFound", "InvalidRegionError"],
)
def test_botocore_configuration_errors_name_the_setting(exc: Exception, named: str) -> None:
    # ProfileNotFound was a non-retriable ServiceError saying only "ProfileNotFound"
    mapped = from_botocore(exc, service="kinesis")
    assert type(mapped) is ConfigurationError and not mapped.retriable
    assert named in str(mapped) and mapped.__cause__ is exc


def test_event_stream_errors_map_by_code() -> None:
    error = EventStreamError(
        {"Error": {"Code": "ResourceInUseException", "Message": "still subscribed"}}, "SubscribeToShard"
    )
    assert type(from_botocore(error)) is ResourceInUseError


@pytest.mark.parametrize(
    "exc",
    [
        ChecksumMismatch(1, 2),
        InvalidPayloadLength(2**30),
        InvalidHeadersLength(2**30),
        NoInitialResponseError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_broken_event_stream_frames_are_transient(exc: BaseException) -> None:
    # A SubscribeToShard frame corrupted or cut on the way is a broken stream, re-subscribed
    # from the continuation; before, botocore's frame errors went through as programming
    # errors and stopped the run.
    mapped = from_botocore(exc, service="kinesis")
    assert type(mapped) is TransientServiceError and mapped.retriable
    assert mapped.__cause__ is exc and type(exc).__name__ in str(mapped)


def test_translate_leaves_programming_errors_alone() -> None:
    assert translate(KeyError("x")) is None
    assert type(from_botocore(KeyError("x"))) is ServiceError
    own = ThrottledError("already ours")
    assert translate(own) is own and from_botocore(own) is own


def test_messages_are_one_bounded_line_and_hide_signing_details() -> None:
    long = from_error_code("ValidationException", "x" * 5000 + "\nsecond line")
    assert len(str(long)) < 300 and "second line" not in str(long)
    signature = from_botocore(
        client_error(
            "InvalidSignatureException",
            "The request signature we calculated does not match. The Canonical String for this request "
            "should have been 'POST\n/\n\nx-amz-security-token:CANARY-SESSION-TOKEN\n'",
        )
    )
    assert "CANARY" not in str(signature) and "does not match" in str(signature)


# --- Kafka ------------------------------------------------------------------------------------

EXPECTED_KAFKA: dict[str, type[ShardlineError]] = {
    **dict.fromkeys(
        [
            "_MSG_TIMED_OUT",
            "_TIMED_OUT",
            "_TIMED_OUT_QUEUE",
            "REQUEST_TIMED_OUT",
            "_TRANSPORT",
            "_ALL_BROKERS_DOWN",
            "NETWORK_EXCEPTION",
            "NOT_LEADER_FOR_PARTITION",
            "LEADER_NOT_AVAILABLE",
            "NOT_ENOUGH_REPLICAS",
            "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
            "KAFKA_STORAGE_ERROR",
            "COORDINATOR_NOT_AVAILABLE",
            "NOT_COORDINATOR",
            "COORDINATOR_LOAD_IN_PROGRESS",
            "REBALANCE_IN_PROGRESS",
        ],
        TransientServiceError,
    ),
    "_PURGE_QUEUE": DeliveryError,
    "_PURGE_INFLIGHT": DeliveryError,
    "THROTTLING_QUOTA_EXCEEDED": ThrottledError,
    "_QUEUE_FULL": BufferFullError,
    **dict.fromkeys(
        ["MSG_SIZE_TOO_LARGE", "INVALID_MSG_SIZE", "RECORD_LIST_TOO_LARGE"], MessageTooLargeError
    ),
    **dict.fromkeys(["INVALID_MSG", "INVALID_RECORD"], InvalidRequestError),
    **dict.fromkeys(["POLICY_VIOLATION", "_INVALID_ARG", "INVALID_CONFIG"], ConfigurationError),
    **dict.fromkeys(
        ["UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "_UNKNOWN_PARTITION", "UNKNOWN_TOPIC_ID"],
        ResourceNotFoundError,
    ),
    **dict.fromkeys(
        [
            "TOPIC_AUTHORIZATION_FAILED",
            "GROUP_AUTHORIZATION_FAILED",
            "CLUSTER_AUTHORIZATION_FAILED",
            "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
        ],
        AccessDeniedError,
    ),
    **dict.fromkeys(["SASL_AUTHENTICATION_FAILED", "_AUTHENTICATION", "_SSL"], AuthenticationError),
    **dict.fromkeys(
        [
            "OUT_OF_ORDER_SEQUENCE_NUMBER",
            "DUPLICATE_SEQUENCE_NUMBER",
            "INVALID_PRODUCER_EPOCH",
            "PRODUCER_FENCED",
            "UNKNOWN_PRODUCER_ID",
            "INVALID_PRODUCER_ID_MAPPING",
            "INVALID_TXN_STATE",
            "_FENCED",
            "_FATAL",
            "_GAPLESS_GUARANTEE",
            "_INCONSISTENT",
        ],
        FatalKafkaError,
    ),
    **dict.fromkeys(
        [
            "UNKNOWN_MEMBER_ID",
            "ILLEGAL_GENERATION",
            "FENCED_INSTANCE_ID",
            "_ASSIGNMENT_LOST",
            "_MAX_POLL_EXCEEDED",
        ],
        LeaseLostError,
    ),
}


def test_kafka_tables_agree() -> None:
    assert set(KAFKA_ERROR_CODES) == set(EXPECTED_KAFKA)
    # every name exists in this confluent-kafka build, so nothing silently drops out
    assert len(kafka_error_classes()) == len(KAFKA_ERROR_CODES)


@pytest.mark.parametrize("name", sorted(KAFKA_ERROR_CODES))
def test_every_kafka_code_maps_as_expected(name: str) -> None:
    expected = EXPECTED_KAFKA[name]
    fatal = expected is FatalKafkaError
    kafka_error = KafkaError(getattr(KafkaError, name), fatal=fatal)
    mapped = from_kafka_error(kafka_error)
    assert type(mapped) is expected
    assert mapped.retriable is (expected in RETRIABLE_CLASSES)
    if isinstance(mapped, ServiceError):
        assert mapped.code == name and mapped.service == "kafka"
    assert type(from_kafka_error(KafkaException(kafka_error))) is expected


def test_fatal_flag_wins_over_the_code() -> None:
    mapped = from_kafka_error(KafkaError(KafkaError._TRANSPORT, fatal=True))
    assert type(mapped) is FatalKafkaError and not mapped.retriable
    assert "fatal" in str(mapped)


def test_unlisted_kafka_codes_follow_librdkafka() -> None:
    assert type(from_kafka_error(KafkaError(KafkaError.INVALID_REQUIRED_ACKS, retriable=True))) is (
        TransientServiceError
    )
    assert type(from_kafka_error(KafkaError(KafkaError.INVALID_REQUIRED_ACKS))) is ServiceError
    assert type(from_kafka_error(KafkaError(KafkaError.INVALID_REQUIRED_ACKS, fatal=True))) is FatalKafkaError
    assert type(from_kafka_error(object())) is ServiceError


def test_a_throttled_client_call_is_mapped_and_retried() -> None:
    """A real boto3 client (stubbed responses, no network) through the mapping and the policy."""
    import random

    from botocore.stub import Stubber

    from shardline.clients import boto3_client
    from shardline.retry import RetryPolicy

    client = boto3_client("kinesis", region_name="us-east-1")
    stubber = Stubber(client)
    request = {"StreamName": "s", "Records": [{"Data": b"x", "PartitionKey": "k"}]}
    stubber.add_client_error(
        "put_records", "ProvisionedThroughputExceededException", "Rate exceeded", 400, expected_params=request
    )
    stubber.add_client_error("put_records", "InternalFailure", "oops", 500, expected_params=request)
    stubber.add_response(
        "put_records",
        {"Records": [{"SequenceNumber": "1", "ShardId": "shardId-0"}]},
        expected_params=request,
    )
    seen: list[type[BaseException]] = []

    def put() -> Any:
        try:
            return client.put_records(**request)
        except ClientError as exc:
            mapped = from_botocore(exc, service="kinesis")
            seen.append(type(mapped))
            raise mapped from exc

    with stubber:
        response = RetryPolicy(rng=random.Random(0)).call_sync(put, sleep=lambda _: None)
    assert response["Records"][0]["SequenceNumber"] == "1"
    assert seen == [ThrottledError, TransientServiceError]
    stubber.assert_no_pending_responses()


# --- the boundaries -------------------------------------------------------------------------


def test_aws_boundary_maps_client_errors_and_keeps_the_cause() -> None:
    from shardline.errormap import map_aws_errors

    original = ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "PutRecords")
    with pytest.raises(ThrottledError) as caught, map_aws_errors("kinesis"):
        raise original
    assert caught.value.__cause__ is original
    assert caught.value.service == "kinesis"


@pytest.mark.parametrize("error", [TypeError("bug"), AttributeError("bug"), KeyError("bug"), ValueError("x")])
def test_aws_boundary_lets_programming_errors_through_untouched(error: Exception) -> None:
    from shardline.errormap import map_aws_errors

    with pytest.raises(type(error)) as caught, map_aws_errors("kinesis"):
        raise error
    assert caught.value is error


def test_boundaries_leave_shardline_errors_and_cancellation_alone() -> None:
    import asyncio

    from shardline.errormap import map_aws_errors, map_kafka_errors

    already = ThrottledError("slow down")
    with pytest.raises(ThrottledError) as caught, map_aws_errors():
        raise already
    assert caught.value is already
    with pytest.raises(asyncio.CancelledError), map_kafka_errors():
        raise asyncio.CancelledError


def test_kafka_boundary_maps_kafka_exceptions_only() -> None:
    from shardline.errormap import map_kafka_errors

    with pytest.raises(ResourceNotFoundError), map_kafka_errors():
        raise KafkaException(KafkaError(KafkaError._UNKNOWN_TOPIC))
    bug = TypeError("bug")
    with pytest.raises(TypeError) as caught, map_kafka_errors():
        raise bug
    assert caught.value is bug


def test_answers_that_do_not_parse_are_transient() -> None:
    # What the reader session's event parser raises for a SubscribeToShard event in another
    # shape than the event's (botocore's walk raised AttributeError and the like)
    exc = ResponseParserError("AttributeError in an event stream message")
    mapped = from_botocore(exc, service="kinesis")
    assert type(mapped) is TransientServiceError and mapped.retriable and mapped.__cause__ is exc
    with pytest.raises(TransientServiceError), map_aws_errors("kinesis"):
        raise exc
    with pytest.raises(AttributeError), map_aws_errors("kinesis"):
        raise AttributeError("a bug passes through the boundary untouched")
