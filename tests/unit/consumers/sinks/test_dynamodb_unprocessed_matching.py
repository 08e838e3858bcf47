"""BatchWriteItem's ``UnprocessedItems`` are matched to the records they came from however the
answer spells the table and the number keys: an unmatched one was reported written (lost)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consumers.sinks.base import Outcome
from consumers.sinks.dynamodb import DynamoDBSink
from consumers.sinks.mapping import FieldMapping
from shardline.records import ConsumedRecord, KinesisPosition

TABLE_ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/readings"


def _reading(n: int, device: Any) -> ConsumedRecord:
    payload = json.dumps({"device": device, "temp": n}).encode()
    return ConsumedRecord(payload, "k", KinesisPosition("s", "shardId-0", str(n)))


class _Client:
    """Leaves the first request unprocessed, keyed and spelled as ``respell`` says."""

    def __init__(self, table_key: str, respell: dict[str, str]) -> None:
        self.table_key = table_key
        self.respell = respell

    async def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((_, requests),) = RequestItems.items()
        first = json.loads(json.dumps(requests[0]))
        number = first["PutRequest"]["Item"]["device"].get("N")
        if number is not None:
            first["PutRequest"]["Item"]["device"]["N"] = self.respell.get(number, number)
        return {"UnprocessedItems": {self.table_key: [first]}}


@pytest.mark.parametrize(
    ("table_key", "device", "respell"),
    [
        (TABLE_ARN, "d1", {}),  # the answer keys the table by its ARN
        ("readings", 100, {"100": "1E+2"}),  # a number key spelled another way
        ("readings", 1.5, {"1.5": "1.50"}),
    ],
)
async def test_an_unprocessed_item_is_resent_not_reported_written(
    table_key: str, device: Any, respell: dict[str, str]
) -> None:
    records = [_reading(1, device), _reading(2, "other")]
    sink = DynamoDBSink(
        "readings", client=_Client(table_key, respell), mapping=FieldMapping(keys=("device",))
    )
    entries = [sink.encode(record) for record in records]
    results = await sink.send(entries)
    assert [result.outcome for result in results] == [Outcome.THROTTLED, Outcome.WRITTEN]


@pytest.mark.parametrize(("first", "second"), [(b"1", b"1.0"), (b"0", b"-0.0"), (b"-0.0", b"0E+5")])
def test_two_spellings_of_one_number_key_are_one_item(first: bytes, second: bytes) -> None:
    sink = DynamoDBSink("readings", client=object(), mapping=FieldMapping(keys=("device",)))
    one = sink.encode(
        ConsumedRecord(b'{"device": ' + first + b"}", "k", KinesisPosition("s", "shardId-0", "1"))
    )
    same = sink.encode(
        ConsumedRecord(b'{"device": ' + second + b"}", "k", KinesisPosition("s", "shardId-0", "2"))
    )
    assert sink.entry_key(one) == sink.entry_key(same)
