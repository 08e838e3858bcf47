"""The sink writer's back-off wait: an abort ends it, and a cancellation is never lost to one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from consumers._pipeline_write import WriteWorkflow
from shardline.errors import SinkError
from shardline.metrics import NullObserver
from shardline.retry import RetryPolicy

BOUND = 5.0


class _Sink:
    name = "unused"

    async def write(self, records: Any) -> Any:  # pragma: no cover - the pause never writes
        raise AssertionError("not called")


def _workflow() -> WriteWorkflow:
    return WriteWorkflow(_Sink(), None, retry=RetryPolicy(), entry_attempts=1, observer=NullObserver())  # type: ignore[arg-type]


async def test_an_abort_ends_the_back_off_at_once() -> None:
    workflow = _workflow()
    pause = asyncio.create_task(workflow._pause(60.0))
    await asyncio.sleep(0)  # it waits
    workflow.abort.set()
    with pytest.raises(SinkError, match="closing"):
        await asyncio.wait_for(pause, BOUND)


async def test_a_cancellation_that_arrives_with_the_abort_is_not_lost() -> None:
    # On Python 3.11 asyncio.wait_for returned normally when the task was cancelled in the
    # loop iteration that also set the event it waited for: the cancelled task went on.
    workflow = _workflow()
    pause = asyncio.create_task(workflow._pause(60.0))
    await asyncio.sleep(0)  # it waits
    workflow.abort.set()
    pause.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(pause, BOUND)
