"""Checkpoint store errors: a non-retriable one stops the run with it, a retriable one is
retried for at most ``PipelineConfig.checkpoint_outage_limit``.

Before, every Shardline error was retried at each interval for ever: with the lease table's
access revoked or the table deleted, ``consume`` logged a warning every few seconds and went
on reading and writing records it could never checkpoint.  Every scenario is bounded by
``asyncio.wait_for``: a run that goes on for ever fails the test.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from consumers.pipeline import Pipeline, PipelineConfig
from consumers.sinks.memory import MemorySink
from shardline.errors import (
    AccessDeniedError,
    CheckpointError,
    ConfigurationError,
    ResourceNotFoundError,
    ServiceError,
    ThrottledError,
)
from tests.unit.consumers.pipeline_doubles import EventLog, ScriptedSource, batch

BOUND = 5.0  # seconds; every scenario ends in well under one when nothing hangs


class RefusingStore(ScriptedSource):
    """A source whose checkpoint store answers every checkpoint with ``error``."""

    def __init__(self, error: ServiceError, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.error = error
        self.refused = 0

    async def checkpoint(self, partition: str, position: Any) -> bool:
        self.refused += 1
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        AccessDeniedError("not authorized to perform dynamodb:UpdateItem", code="AccessDeniedException"),
        ResourceNotFoundError("Requested resource not found", code="ResourceNotFoundException"),
    ],
    ids=["access-denied", "table-deleted"],
)
async def test_a_non_retriable_store_error_stops_the_run_with_it(error: ServiceError) -> None:
    source = RefusingStore(error, [batch("a", 1, 3)], endless=True)
    sink = MemorySink()
    pipeline = Pipeline(source, sink, config=PipelineConfig(checkpoint_interval=0.01))
    with pytest.raises(type(error)) as raised:
        await asyncio.wait_for(pipeline.run(), BOUND)
    assert raised.value is error
    assert len(sink.items) == 3  # what was read was written; only its checkpoint is missing
    assert source.close_calls == 1


async def test_a_retriable_store_error_is_retried_only_up_to_the_outage_limit() -> None:
    throttled = ThrottledError("lease table throttled", code="ProvisionedThroughputExceededException")
    source = RefusingStore(throttled, [batch("a", 1, 3)], endless=True)
    observer = EventLog()
    config = PipelineConfig(checkpoint_interval=0.01, checkpoint_outage_limit=0.05)
    pipeline = Pipeline(source, MemorySink(), config=config, observer=observer)
    with pytest.raises(CheckpointError, match="'a' failed for") as raised:
        await asyncio.wait_for(pipeline.run(), BOUND)
    assert raised.value.__cause__ is throttled
    assert source.refused >= 2  # retried before giving up
    assert observer.total("checkpoint_errors") == source.refused


def test_the_outage_limit_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="checkpoint_outage_limit"):
        PipelineConfig(checkpoint_outage_limit=0)
