"""A payload with an empty top-level field name cannot be a DynamoDB item (attribute names are
at least one character long): that record's typed rejection, its neighbours written in the
same call.  Before, the item went out; DynamoDB failed the whole BatchWriteItem call and the
pipeline bisected healthy records to find it (and moto stored the item, breaking every later
Scan of the table)."""

from __future__ import annotations

from consumers.sinks.base import Outcome
from consumers.sinks.dynamodb import DynamoDBSink
from shardline.records import ConsumedRecord, KinesisPosition
from tests.unit.consumers.sinks.dynamodb_doubles import AcceptingDynamoDB


def _record(sequence: int, data: bytes) -> ConsumedRecord:
    return ConsumedRecord(data, "k", KinesisPosition("s", "shardId-000000000000", str(sequence)))


async def test_an_empty_field_name_is_rejected_alone_without_quoting_the_payload() -> None:
    client = AcceptingDynamoDB()
    sink = DynamoDBSink("table", client=client)
    results = await sink.write(
        [_record(1, b'{"a": 1}'), _record(2, b'{"": "secret-value", "a": 2}'), _record(3, b'{"a": 3}')]
    )
    assert [r.outcome for r in results] == [Outcome.WRITTEN, Outcome.REJECTED, Outcome.WRITTEN]
    assert results[1].error_type == "SerializationError"
    assert "secret-value" not in str(results[1].reason)
    assert [item["a"] for item in client.items] == [{"N": "1"}, {"N": "3"}]
