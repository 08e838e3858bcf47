"""The sinks' verdicts on per-entry error codes come from the shared error map, not a table of their own."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from consumers.sinks.awserrors import EntryVerdict, classify_code
from shardline.errormap import AWS_ERROR_CODES, map_aws_errors
from shardline.errors import (
    ConditionalCheckFailedError,
    ShardlineError,
    ThrottledError,
    TransientServiceError,
)


@pytest.mark.parametrize("code", sorted(AWS_ERROR_CODES))
def test_every_mapped_code_gets_the_verdict_its_class_implies(code: str) -> None:
    cls = AWS_ERROR_CODES[code]
    expected = (
        EntryVerdict.THROTTLED
        if issubclass(cls, ThrottledError)
        else EntryVerdict.RETRY
        if cls.retriable
        else EntryVerdict.REJECTED
    )
    assert classify_code(code, "firehose") is expected


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        ("ServiceUnavailableException", EntryVerdict.THROTTLED),  # Firehose's throttle
        ("InternalFailure", EntryVerdict.RETRY),
        ("ProvisionedThroughputExceededException", EntryVerdict.THROTTLED),
        ("InvalidArgumentException", EntryVerdict.REJECTED),
        ("SomethingNobodyDocumented", EntryVerdict.REJECTED),
    ],
)
def test_firehose_and_dynamodb_entry_codes(code: str, verdict: EntryVerdict) -> None:
    assert classify_code(code, "firehose") is verdict


def translate(exc: BaseException, service: str) -> BaseException:
    """What a sink's call site sees once ``exc`` went through the error boundary."""
    try:
        with map_aws_errors(service):
            raise exc
    except BaseException as mapped:
        return mapped
    raise AssertionError("unreachable")


def test_whole_call_errors_are_translated_by_the_error_map() -> None:
    throttled = translate(
        ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "PutRecordBatch"),
        "firehose",
    )
    failed = translate(
        ClientError({"Error": {"Code": "ConditionalCheckFailedException", "Message": "no"}}, "PutItem"),
        "dynamodb",
    )
    refused = translate(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "dynamodb")
    assert isinstance(throttled, ThrottledError) and throttled.retriable
    assert isinstance(failed, ConditionalCheckFailedError) and not failed.retriable
    assert isinstance(refused, TransientServiceError) and refused.retriable
    own = ShardlineError("already ours")
    assert translate(own, "s3") is own
