"""DynamoDB stores an attribute nested 32 levels deep (the attribute being the first) and refuses
one level more for the whole BatchWriteItem call.  moto stores any depth, so the double below
answers as DynamoDB does; a record nested past the limit must be refused alone, before the
call, and its neighbours written in that one call."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from consumers.sinks.base import Outcome
from consumers.sinks.dynamodb import DynamoDBSink
from shardline.records import ConsumedRecord, KinesisPosition
from tests.faults.workflow import deliver
from tests.unit.consumers.sinks.dynamodb_doubles import AcceptingDynamoDB


def _levels(value: dict[str, Any]) -> int:
    """Levels of an attribute value: 1, plus those of its deepest member."""
    ((kind, inner),) = value.items()
    members = inner.values() if kind == "M" else inner if kind == "L" else ()
    return 1 + max((_levels(member) for member in members), default=0)


class NestingLimitedDynamoDB(AcceptingDynamoDB):
    """Refuses a whole call holding an attribute nested past 32 levels, as DynamoDB does."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def batch_write_item(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        for requests in kwargs["RequestItems"].values():
            for request in requests:
                if any(_levels(value) > 32 for value in request["PutRequest"]["Item"].values()):
                    message = "Nesting Levels have exceeded supported limits"
                    raise ClientError(
                        {"Error": {"Code": "ValidationException", "Message": message}}, "BatchWriteItem"
                    )
        return await super().batch_write_item(**kwargs)


def _nested(wraps: int, inner: str = "1", opener: str = '{"a":', closer: str = "}") -> bytes:
    """A payload whose attribute ``a`` holds ``wraps`` maps (or lists) around a leaf."""
    return ('{"a":' + opener * wraps + inner + closer * wraps + "}").encode()


def _record(sequence: int, data: bytes) -> ConsumedRecord:
    return ConsumedRecord(data, "k", KinesisPosition("s", "shardId-000000000000", str(sequence)))


@pytest.mark.parametrize(("opener", "closer"), [('{"a":', "}"), ("[", "]")])
async def test_an_attribute_nested_past_dynamodbs_limit_is_refused_alone_before_the_call(
    opener: str, closer: str
) -> None:
    client = NestingLimitedDynamoDB()
    sink = DynamoDBSink("table", client=client)
    batch = [_record(1, b'{"v": 1}'), _record(2, _nested(32, "1", opener, closer)), _record(3, b'{"v": 3}')]

    results = await sink.write(batch)

    assert [r.outcome for r in results] == [Outcome.WRITTEN, Outcome.REJECTED, Outcome.WRITTEN]
    assert results[1].error_type == "SerializationError"
    assert "32 levels" in results[1].reason
    assert client.calls == 1
    assert [item["v"] for item in client.items] == [{"N": "1"}, {"N": "3"}]


async def test_the_deepest_attribute_dynamodb_stores_is_written() -> None:
    client = NestingLimitedDynamoDB()
    sink = DynamoDBSink("table", client=client)

    workflow = await deliver(sink, [_record(1, _nested(31)), _record(2, _nested(30, "[1]"))])

    assert workflow.counts.written == 2
    assert [_levels(item["a"]) for item in client.items] == [32, 32]
