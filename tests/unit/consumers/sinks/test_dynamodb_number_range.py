"""A number just outside DynamoDB's range is the record's own rejection, before the call.

boto3's serializer takes magnitudes from about 1E-165 to 9.9E+126 (its decimal context's
subnormals and ``Emax=126``); DynamoDB stores 1E-130 to 9.9...9E+125 and refused the whole
BatchWriteItem over one number between the two, so every neighbour's call failed with it.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from consumers.sinks.base import Outcome
from consumers.sinks.dynamodb import DynamoDBSink
from shardline.errors import SerializationError
from shardline.records import ConsumedRecord, KinesisPosition
from tests.unit.consumers.sinks.dynamodb_doubles import AcceptingDynamoDB


def _record(sequence: int, payload: bytes) -> ConsumedRecord:
    return ConsumedRecord(payload, "k", KinesisPosition("s", "shardId-000000000000", str(sequence)))


@pytest.mark.parametrize(
    "number",
    [
        "1E+126",
        "-9.9E+126",
        "1E-131",
        "-5E-131",
        "1E-160",
        "0.00001E-126",  # 1E-131 spelt with a small exponent
    ],
)
async def test_a_number_past_dynamodbs_range_is_rejected_alone(number: str) -> None:
    client = AcceptingDynamoDB()
    sink = DynamoDBSink("table", client=client)
    crafted = b'{"deep": {"list": [1, ' + number.encode() + b"]}}"
    results = await sink.write([_record(1, b'{"a": 1}'), _record(2, crafted), _record(3, b'{"a": 3}')])
    assert [r.outcome for r in results] == [Outcome.WRITTEN, Outcome.REJECTED, Outcome.WRITTEN]
    assert results[1].error_type == "SerializationError"
    assert "range" in results[1].reason
    assert number not in results[1].reason
    assert [item["a"] for item in client.items] == [{"N": "1"}, {"N": "3"}]


@pytest.mark.parametrize(
    ("number", "stored"),
    [
        ("9.9999999999999999999999999999999999999E+125", "9.9999999999999999999999999999999999999E+125"),
        ("-9.9999999999999999999999999999999999999E+125", "-9.9999999999999999999999999999999999999E+125"),
        ("1E-130", "1E-130"),
        ("-1E-130", "-1E-130"),
        ("0.0", "0.0"),
    ],
)
def test_numbers_at_the_edges_of_the_range_are_kept(number: str, stored: str) -> None:
    sink = DynamoDBSink("table", client=object())
    record = _record(1, b'{"n": ' + number.encode() + b"}")
    assert sink.encode(record).item["n"] == {"N": stored}


@pytest.mark.parametrize(
    ("number", "stored"),
    [
        ("1" + "0" * 41, "1E+41"),  # one significant digit: DynamoDB trims trailing zeros
        ("-123" + "0" * 60, "-1.23E+62"),
        ("9" * 38 + "0" * 88, "9.9999999999999999999999999999999999999E+125"),
        ("1" * 38, "1" * 38),
    ],
)
def test_a_long_integer_dynamodb_can_hold_is_kept_exactly(number: str, stored: str) -> None:
    sink = DynamoDBSink("table", client=object())
    item = sink.encode(_record(1, b'{"n": ' + number.encode() + b"}")).item
    assert item["n"] == {"N": stored}
    assert Decimal(item["n"]["N"]) == Decimal(number)


@pytest.mark.parametrize(
    "number",
    [
        "1" * 39,  # 39 significant digits
        "1" + "0" * 126,  # 1E+126
        "9" * 5000,  # past Python's int-string limit as well as the range
    ],
)
def test_a_long_integer_dynamodb_cannot_hold_is_rejected_alone(number: str) -> None:
    sink = DynamoDBSink("table", client=object())
    with pytest.raises(SerializationError, match="cannot be a DynamoDB item"):
        sink.encode(_record(1, b'{"n": ' + number.encode() + b"}"))
