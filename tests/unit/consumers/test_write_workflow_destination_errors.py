"""A destination that cannot be written stops the run, also when a batching sink reports it
per record instead of raising: nothing is bisected into the dead letter."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from botocore.exceptions import ClientError

from consumers._pipeline_write import WriteWorkflow
from consumers.sinks.base import BatchingSink, EntryResult
from consumers.sinks.deadletter import MemoryDeadLetter
from consumers.sinks.firehose import FirehoseSink
from shardline.errors import (
    AccessDeniedError,
    AuthenticationError,
    KmsError,
    ResourceNotFoundError,
    ShardlineError,
    SinkError,
    ValidationError,
)
from shardline.metrics import NullObserver
from shardline.records import ConsumedRecord, KinesisPosition
from shardline.retry import RetryPolicy

NO_WAIT = RetryPolicy(max_attempts=3, deadline=None, initial_backoff=0.0, max_backoff=0.0)


def _records(count: int) -> list[ConsumedRecord]:
    return [
        ConsumedRecord(
            data=json.dumps({"n": n}).encode(),
            partition_key="k",
            position=KinesisPosition("s", "shardId-0", str(n)),
        )
        for n in range(1, count + 1)
    ]


class _FailingSink(BatchingSink[bytes]):
    """Every call raises ``error``; BatchingSink turns that into per-record CALL_FAILED."""

    name = "failing"

    def __init__(self, error: ShardlineError) -> None:
        super().__init__()
        self.error = error
        self.sent = 0

    def encode(self, record: ConsumedRecord) -> bytes:
        return record.data

    def entry_size(self, entry: bytes) -> int:
        return len(entry)

    async def send(self, entries: Sequence[bytes]) -> Sequence[EntryResult]:
        self.sent += 1
        raise self.error


async def _write(sink: Any, records: Sequence[ConsumedRecord]) -> tuple[MemoryDeadLetter, list[bool]]:
    dead = MemoryDeadLetter()
    workflow = WriteWorkflow(sink, dead, retry=NO_WAIT, entry_attempts=3, observer=NullObserver())
    resolved = [False] * len(records)
    with pytest.raises(SinkError, match="cannot be written"):
        await workflow.write(records, [r.position for r in records], resolved)
    return dead, resolved


@pytest.mark.parametrize(
    "error",
    [
        AccessDeniedError("denied", code="AccessDeniedException"),
        AuthenticationError("expired", code="ExpiredTokenException"),
        KmsError("key disabled", code="KMSDisabledException"),
        ResourceNotFoundError("no table", code="ResourceNotFoundException"),
    ],
)
async def test_a_destination_error_of_a_batching_sink_stops_without_dead_lettering(
    error: ShardlineError,
) -> None:
    sink = _FailingSink(error)
    dead, resolved = await _write(sink, _records(8))
    assert sink.sent == 1  # no bisection
    assert dead.entries == {}
    assert resolved == [False] * 8


async def test_firehose_access_denied_stops_without_dead_lettering() -> None:
    class Client:
        async def put_record_batch(self, **kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutRecordBatch")

    dead, resolved = await _write(FirehoseSink("stream", client=Client()), _records(4))
    assert dead.entries == {}
    assert not any(resolved)


async def test_a_record_error_of_a_batching_sink_is_still_bisected_to_the_dead_letter() -> None:
    sink = _FailingSink(ValidationError("bad record"))
    records = _records(4)
    dead = MemoryDeadLetter()
    workflow = WriteWorkflow(sink, dead, retry=NO_WAIT, entry_attempts=3, observer=NullObserver())
    resolved = [False] * 4
    await workflow.write(records, [r.position for r in records], resolved)
    assert len(dead.entries) == 4
    assert all(resolved)
