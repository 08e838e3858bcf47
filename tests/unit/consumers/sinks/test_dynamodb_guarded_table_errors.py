"""Guarded DynamoDB puts: an error that is the table's (access, credentials, a missing table)
is a failed call the pipeline stops on, not a rejection of each item that dead-letters it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from consumers._pipeline_write import WriteWorkflow
from consumers.sinks.base import Outcome
from consumers.sinks.deadletter import MemoryDeadLetter
from consumers.sinks.dynamodb import DynamoDBSink
from shardline.errors import SinkError
from shardline.metrics import NullObserver
from shardline.records import ConsumedRecord, KinesisPosition
from shardline.retry import RetryPolicy

NO_WAIT = RetryPolicy(max_attempts=3, deadline=None, initial_backoff=0.0, max_backoff=0.0)


class _Client:
    """Answers every PutItem with the error ``code`` (ValidationException only for ``bad``)."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.puts = 0

    async def put_item(self, **kwargs: Any) -> dict[str, Any]:
        self.puts += 1
        code = self.code
        if code == "ValidationException" and kwargs["Item"].get("bad") is None:
            return {}
        raise ClientError({"Error": {"Code": code, "Message": "no"}}, "PutItem")


def _records(*payloads: dict[str, Any]) -> list[ConsumedRecord]:
    return [
        ConsumedRecord(
            data=json.dumps(payload).encode(),
            partition_key="k",
            position=KinesisPosition("s", "shardId-0", str(n)),
        )
        for n, payload in enumerate(payloads, start=1)
    ]


@pytest.mark.parametrize(
    "code",
    ["AccessDeniedException", "ResourceNotFoundException", "ExpiredTokenException", "KMSDisabledException"],
)
async def test_a_table_error_stops_the_run_with_nothing_dead_lettered(code: str) -> None:
    records = _records(*({"n": n} for n in range(6)))
    sink = DynamoDBSink("table", client=_Client(code), guarded=True)
    dead = MemoryDeadLetter()
    workflow = WriteWorkflow(sink, dead, retry=NO_WAIT, entry_attempts=3, observer=NullObserver())
    resolved = [False] * len(records)
    with pytest.raises(SinkError, match="cannot be written"):
        await workflow.write(records, [r.position for r in records], resolved)
    assert dead.entries == {}
    assert not any(resolved)


async def test_an_item_the_table_refuses_is_still_rejected_on_its_own() -> None:
    records = _records({"n": 1}, {"n": 2, "bad": True}, {"n": 3})
    sink = DynamoDBSink("table", client=_Client("ValidationException"), guarded=True)
    results = await sink.write(records)
    assert [r.outcome for r in results] == [Outcome.WRITTEN, Outcome.REJECTED, Outcome.WRITTEN]
    assert results[1].error_type == "ValidationException"
