"""In-memory doubles of a source, a sink and a dead-letter destination for pipeline tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from consumers.sinks.base import DeadLetterEntry
from consumers.source import SourceBatch
from shardline.errors import LeaseLostError, ShardlineError
from shardline.records import ConsumedRecord, KinesisPosition, Position


def record(shard: str, sequence: int, data: bytes = b"x", key: str = "k") -> ConsumedRecord:
    return ConsumedRecord(data=data, partition_key=key, position=KinesisPosition("s", shard, str(sequence)))


def batch(
    shard: str, first: int, count: int, *, end: bool = False, millis_behind: int | None = None
) -> SourceBatch:
    records = [record(shard, sequence) for sequence in range(first, first + count)]
    return SourceBatch(shard, records, millis_behind_latest=millis_behind, end_of_partition=end)


class ScriptedSource:
    """Yields the given batches, then either ends or (``endless``) waits until stopped."""

    def __init__(self, batches: Sequence[SourceBatch], *, endless: bool = False) -> None:
        self._batches = list(batches)
        self._endless = endless
        self._stopped = asyncio.Event()
        self.checkpoints: list[tuple[str, Position]] = []
        self.ended: list[str] = []
        self.lost: set[str] = set()
        self.partitions_lost = 0
        self.yielded = 0
        self.stop_calls = 0
        self.close_calls = 0
        self.all_yielded = asyncio.Event()

    async def batches(self) -> AsyncIterator[SourceBatch]:
        for item in self._batches:
            if self._stopped.is_set():
                return
            self.yielded += 1
            yield item
        self.all_yielded.set()
        if self._endless:
            await self._stopped.wait()

    def lose(self, partition: str) -> None:
        """Another worker holds ``partition`` now: its checkpoints are refused."""
        self.lost.add(partition)
        self.partitions_lost += 1

    async def checkpoint(self, partition: str, position: Position) -> bool:
        if partition in self.lost:
            raise LeaseLostError("lost")
        self.checkpoints.append((partition, position))
        return True

    async def checkpoint_end(self, partition: str) -> None:
        if partition in self.lost:
            raise LeaseLostError("lost")
        self.ended.append(partition)

    async def stop(self) -> None:
        self.stop_calls += 1
        self._stopped.set()

    async def close(self) -> None:
        self.close_calls += 1
        self._stopped.set()

    def last_checkpoint(self, partition: str) -> int | None:
        positions = [p for part, p in self.checkpoints if part == partition]
        if not positions:
            return None
        last = positions[-1]
        assert isinstance(last, KinesisPosition)
        return int(last.sequence_number)


class RecordingSink:
    """Remembers every write; ``fail`` decides per batch whether (and how) a write fails."""

    def __init__(
        self, fail: Callable[[Sequence[ConsumedRecord]], BaseException | None] | None = None
    ) -> None:
        self.writes: list[list[ConsumedRecord]] = []
        self.written: dict[str, ConsumedRecord] = {}
        self.attempts = 0
        self._fail = fail
        self.gate: asyncio.Event | None = None
        self.write_started = asyncio.Event()
        self.closed = False

    async def write(self, batch: Sequence[ConsumedRecord]) -> None:
        self.attempts += 1
        self.write_started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self._fail is not None:
            error = self._fail(batch)
            if error is not None:
                raise error
        self.writes.append(list(batch))
        for item in batch:
            self.written[item.identity] = item

    async def close(self) -> None:
        self.closed = True


class RecordingDeadLetter:
    """``broken``: every put fails for good; ``unavailable_for``: the first N puts fail retriably."""

    def __init__(self, *, broken: bool = False, unavailable_for: int = 0) -> None:
        self.entries: list[DeadLetterEntry] = []
        self._broken = broken
        self._unavailable_for = unavailable_for

    async def put(self, entries: Sequence[DeadLetterEntry]) -> None:
        if self._broken:
            raise ShardlineError("dead-letter store refuses the entries", retriable=False)
        if self._unavailable_for > 0:
            self._unavailable_for -= 1
            raise ShardlineError("dead-letter store unavailable", retriable=True)
        self.entries.extend(entries)

    async def close(self) -> None:
        return None


class EventLog:
    """A metrics observer that keeps every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float, dict[str, Any]]] = []

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.events.append((name, value, dimensions))

    def total(self, name: str) -> float:
        return sum(value for event, value, _ in self.events if event == name)
