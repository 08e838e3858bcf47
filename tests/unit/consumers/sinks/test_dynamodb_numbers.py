"""A number DynamoDB cannot hold is the record's own rejection, typed, never a failed call."""

from __future__ import annotations

import pytest

from consumers.sinks.dynamodb import DynamoDBSink
from shardline.errors import SerializationError
from shardline.records import ConsumedRecord, KinesisPosition


@pytest.mark.parametrize(
    "number",
    [
        "1e300",  # over DynamoDB's 9.9E+125: decimal.Overflow
        "1e-200",  # under its 1E-130: decimal.Underflow
        "1.23456789012345678901234567890123456789012",  # past 38 digits: decimal.Inexact
    ],
)
def test_a_number_outside_dynamodbs_range_is_a_serialization_error(number: str) -> None:
    sink = DynamoDBSink("table", client=object())
    record = ConsumedRecord(
        b'{"reading": ' + number.encode() + b"}", "k", KinesisPosition("s", "shardId-000000000000", "1")
    )
    with pytest.raises(SerializationError, match="cannot be a DynamoDB item"):
        sink.encode(record)


def test_a_number_within_range_is_kept_exactly() -> None:
    sink = DynamoDBSink("table", client=object())
    record = ConsumedRecord(b'{"reading": 21.5}', "k", KinesisPosition("s", "shardId-000000000000", "1"))
    assert sink.encode(record).item["reading"] == {"N": "21.5"}
