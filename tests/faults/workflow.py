"""Drive a sink through the pipeline's write workflow, with back-offs recorded instead of waited."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from consumers._pipeline_write import WriteWorkflow
from consumers.sinks.base import DeadLetter, Sink
from shardline.metrics import NullObserver
from shardline.records import ConsumedRecord
from shardline.retry import RetryPolicy

NO_WAIT = RetryPolicy(max_attempts=None, deadline=None, initial_backoff=0.0, max_backoff=0.0)


class Sleeps:
    """The workflow's sleep: records each back-off instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def deliver(
    sink: Sink,
    batch: Sequence[ConsumedRecord],
    dead_letter: DeadLetter | None = None,
    *,
    entry_attempts: int = 8,
    retry: RetryPolicy = NO_WAIT,
    sleep: Any = None,
) -> WriteWorkflow:
    """Write ``batch`` as the pipeline does; raises what the workflow raises."""
    workflow = WriteWorkflow(
        sink,
        dead_letter,
        retry=retry,
        entry_attempts=entry_attempts,
        observer=NullObserver(),
        sleep=sleep if sleep is not None else Sleeps(),
    )
    resolved = [False] * len(batch)
    await workflow.write(batch, [record.position for record in batch], resolved)
    return workflow
