"""A record cannot name key values DynamoDB refuses for the whole call, nor carry the sink's own
attributes into its item: its typed rejection, its neighbours written in the same call."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consumers.sinks.base import Outcome
from consumers.sinks.dynamodb import DynamoDBSink
from consumers.sinks.mapping import FieldMapping
from shardline.records import ConsumedRecord, KafkaPosition
from tests.unit.consumers.sinks.dynamodb_doubles import AcceptingDynamoDB


def _record(offset: int, payload: dict[str, Any]) -> ConsumedRecord:
    return ConsumedRecord(json.dumps(payload).encode(), "k", KafkaPosition("t", 0, offset))


@pytest.mark.parametrize("device", ["", "x" * 2049, "\u00e9" * 1025])
async def test_a_key_value_dynamodb_refuses_is_rejected_alone_without_quoting_it(device: str) -> None:
    client = AcceptingDynamoDB()
    sink = DynamoDBSink("table", client=client, mapping=FieldMapping(keys=("device",)))
    results = await sink.write(
        [_record(1, {"device": "a", "v": 1}), _record(2, {"device": device}), _record(3, {"device": "b"})]
    )
    assert [r.outcome for r in results] == [Outcome.WRITTEN, Outcome.REJECTED, Outcome.WRITTEN]
    assert results[1].error_type == "ValidationError"
    assert "xxx" not in results[1].reason and "\u00e9" not in results[1].reason
    assert [item["device"] for item in client.items] == [{"S": "a"}, {"S": "b"}]


async def test_a_key_value_at_the_limit_is_written() -> None:
    client = AcceptingDynamoDB()
    sink = DynamoDBSink("table", client=client, mapping=FieldMapping(keys=("device",)))
    results = await sink.write([_record(1, {"device": "x" * 2048})])
    assert [r.outcome for r in results] == [Outcome.WRITTEN]


async def test_the_payload_cannot_set_the_position_attribute_the_guard_compares() -> None:
    # Kafka records carry no tiebreak; the payload's value stayed in the item, and a later
    # write of the item whose version tied compared its own position against it
    client = AcceptingDynamoDB()
    sink = DynamoDBSink("table", client=client, mapping=FieldMapping(keys=("device",)))
    await sink.write([_record(1, {"device": "a", "shardline_version_position": "~", "shardline_version": 9})])
    (item,) = client.items
    assert "shardline_version_position" not in item
    assert item["shardline_version"] == {"N": "2"}
