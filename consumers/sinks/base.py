"""The contract between the pipeline and every sink.

The pipeline hands a sink a batch of records of one partition (shard or Kafka partition)
and awaits :meth:`Sink.write`.  When ``write`` returns, every record of the batch is
durably written *or* dead-lettered: that is the acknowledgement the pipeline checkpoints
on.  ``write`` raises :class:`shardline.errors.SinkError` when it could do neither; the
pipeline then does not checkpoint past the batch.

Sinks must be idempotent: writing the same record twice leaves the same state as once, so
replays and at-least-once redelivery cause no double effects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from shardline.records import ConsumedRecord

__all__ = ["DeadLetter", "DeadLetterEntry", "Sink"]


@runtime_checkable
class Sink(Protocol):
    """Idempotent destination of consumed records."""

    async def write(self, batch: Sequence[ConsumedRecord]) -> None:
        """Write (or dead-letter) every record of ``batch``; return only when that is durable."""
        ...

    async def close(self) -> None:
        """Flush anything buffered and release clients."""
        ...


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """A record that could not be written, with why and where it came from."""

    record: ConsumedRecord = field(repr=False)
    reason: str
    error_type: str = ""
    attempts: int = 0
    destination: str = ""


@runtime_checkable
class DeadLetter(Protocol):
    """Where records go that keep failing (poison records, rejected records).

    ``put`` returns only once the entries are durable; the pipeline then treats the records
    as acknowledged so the shard keeps moving.
    """

    async def put(self, entries: Sequence[DeadLetterEntry]) -> None: ...

    async def close(self) -> None: ...
