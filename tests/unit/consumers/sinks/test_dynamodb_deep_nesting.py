"""A payload nested deeper than the item serializer can recurse is that record's typed
rejection; its neighbours are written in the same call."""

from __future__ import annotations

import json
import sys
from typing import Any

from consumers.sinks.base import Outcome
from consumers.sinks.dynamodb import DynamoDBSink
from shardline.records import ConsumedRecord, KinesisPosition


class _Client:
    def __init__(self) -> None:
        self.calls: list[int] = []

    async def batch_write_item(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.extend(len(requests) for requests in kwargs["RequestItems"].values())
        return {}


def _record(sequence: int, data: bytes) -> ConsumedRecord:
    return ConsumedRecord(data, "k", KinesisPosition("s", "shardId-000000000000", str(sequence)))


async def test_a_deeply_nested_payload_is_rejected_alone() -> None:
    depth = sys.getrecursionlimit() * 3 // 5  # the JSON parser takes it
    deep = b'{"a":' * depth + b"1" + b"}" * depth
    assert isinstance(json.loads(deep), dict)
    client = _Client()
    sink = DynamoDBSink("table", client=client)
    results = await sink.write([_record(1, b'{"a": 1}'), _record(2, deep), _record(3, b'{"a": 3}')])
    assert [r.outcome for r in results] == [Outcome.WRITTEN, Outcome.REJECTED, Outcome.WRITTEN]
    assert results[1].error_type == "SerializationError"
    assert client.calls == [2]
