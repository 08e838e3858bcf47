"""The S3 dead letter names the bucket owner it expects, so S3 refuses a bucket of another account."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import botocore.session
import pytest
from botocore.validate import validate_parameters

from consumers.sinks.base import DeadLetterEntry
from consumers.sinks.deadletter import S3DeadLetter
from consumers.sinks.uri import dead_letter_from_uri
from shardline.errors import ConfigurationError
from shardline.records import ConsumedRecord, KinesisPosition

_PUT_OBJECT = botocore.session.get_session().get_service_model("s3").operation_model("PutObject").input_shape


class RecordingS3:
    """Records put_object's arguments after botocore's own validation of them (so a misspelt
    parameter fails here as it would against S3); the wire is covered by the integration tests."""

    def __init__(self) -> None:
        self.puts: list[dict[str, Any]] = []

    async def put_object(self, **kwargs: Any) -> dict[str, Any]:
        validate_parameters(kwargs, _PUT_OBJECT)
        self.puts.append(kwargs)
        return {}


def _entry() -> DeadLetterEntry:
    record = ConsumedRecord(
        b"payload",
        partition_key="k",
        position=KinesisPosition("telemetry", "shardId-000000000000", "1"),
        arrival_time=datetime(2024, 5, 1, tzinfo=UTC),
    )
    return DeadLetterEntry(
        record=record, reason="poison", error_type="SerializationError", attempts=1, destination="x"
    )


async def test_every_put_carries_the_expected_bucket_owner() -> None:
    client = RecordingS3()
    dead = S3DeadLetter("dead-letters", "dlq", client=client, expected_bucket_owner="123456789012")
    await dead.put([_entry()])
    assert [put["ExpectedBucketOwner"] for put in client.puts] == ["123456789012"]


async def test_without_an_owner_the_put_names_none() -> None:
    client = RecordingS3()
    await S3DeadLetter("dead-letters", client=client).put([_entry()])
    assert "ExpectedBucketOwner" not in client.puts[0]


async def test_the_uri_carries_the_owner() -> None:
    client = RecordingS3()
    dead = dead_letter_from_uri("s3://dead-letters/dlq?expected_bucket_owner=123456789012", client=client)
    await dead.put([_entry()])
    assert client.puts[0]["ExpectedBucketOwner"] == "123456789012"


@pytest.mark.parametrize("owner", ["", "12345678901", "arn:aws:iam::123456789012:root", "12345678901x"])
def test_a_malformed_owner_is_refused_before_any_call(owner: str) -> None:
    with pytest.raises(ConfigurationError):
        S3DeadLetter("dead-letters", client=RecordingS3(), expected_bucket_owner=owner)


def test_entries_without_an_arrival_time_have_one_key_whatever_the_day() -> None:
    """The key's day folder came from the clock for such entries: a put retried after
    midnight wrote a second object instead of the same one again."""
    record = ConsumedRecord(b"x", "k", KinesisPosition("s", "shardId-0", "1"))
    entry = DeadLetterEntry(record=record, reason="r", error_type="E", attempts=1, destination="d")
    key = S3DeadLetter("bucket", "dlq").key_for([entry])
    assert key.startswith("dlq/undated/") and key == S3DeadLetter("bucket", "dlq").key_for([entry])
