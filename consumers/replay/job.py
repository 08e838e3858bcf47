"""A replay or backfill job: read a bounded range into a sink, resumably, and summarise.

The job keeps its progress in a checkpoint store of its *own* namespace (e.g.
``replay-<name>``), one lease per partition, so a crashed job resumes where it stopped and
never touches a live consumer's checkpoints.  A partition whose range was fully written is
marked ``SHARD_END`` and skipped by a rerun.  Because sinks are idempotent, records written
after the last checkpoint and before a crash are simply written again on resume.  When one
partition fails, the others are cancelled and the error is raised: a rerun resumes all of
them from their checkpoints.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from consumers.checkpoint.base import CheckpointStore
from consumers.replay.ranges import RangeReader
from consumers.sinks.base import BatchingSink, Sink
from shardline.records import SHARD_END

__all__ = ["ReplayJob", "ReplaySummary"]


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    """What a job did: records read, written, skipped as duplicates, dead-lettered.

    ``malformed`` counts archive lines that could not be read as records and
    ``unreadable_objects`` archive objects in a compression the reader does not decode; both
    were skipped, and either makes :attr:`exit_status` 3 so a backfill that silently read
    nothing cannot pass for a successful one.
    """

    partitions: int
    partitions_skipped: int
    read: int
    written: int
    duplicates: int
    dead_lettered: int
    malformed: int = 0
    unreadable_objects: int = 0

    EXIT_INPUT_SKIPPED: ClassVar[int] = 3
    """Exit status of a job that finished but skipped malformed input."""

    @property
    def exit_status(self) -> int:
        """0 when every input line was read, 3 when malformed lines or objects were skipped."""
        return self.EXIT_INPUT_SKIPPED if self.malformed or self.unreadable_objects else 0

    def lines(self) -> list[str]:
        lines = [
            f"partitions: {self.partitions} ({self.partitions_skipped} already complete)",
            f"records read: {self.read}",
            f"written: {self.written}",
            f"skipped as duplicates: {self.duplicates}",
            f"dead-lettered: {self.dead_lettered}",
            f"malformed lines skipped: {self.malformed}",
        ]
        if self.unreadable_objects:
            lines.append(f"unreadable archive objects skipped: {self.unreadable_objects}")
        return lines


ProgressCallback = Callable[[str, int], None]
"""Called with (partition, records just written) after each batch."""


class ReplayJob:
    """Reads every partition of ``reader`` into ``sink``, checkpointing in ``store``."""

    def __init__(
        self,
        reader: RangeReader,
        sink: Sink,
        store: CheckpointStore,
        *,
        owner: str | None = None,
        concurrency: int = 4,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.reader = reader
        self.sink = sink
        self.store = store
        self.owner = owner or f"replay-{uuid.uuid4().hex[:12]}"
        self._slots = asyncio.Semaphore(concurrency)
        self._on_progress = on_progress
        self._read = 0
        self._skipped = 0

    def __repr__(self) -> str:
        return f"ReplayJob(reader={self.reader!r}, sink={self.sink!r})"

    async def run(self) -> ReplaySummary:
        partitions = await self.reader.partitions()
        before = _stats(self.sink)
        try:
            async with asyncio.TaskGroup() as group:
                for partition in partitions:
                    group.create_task(self._partition(partition))
        except BaseExceptionGroup as failed:
            # A failing partition stops its siblings (their progress is checkpointed), so a
            # rerun never races a leftover task; the first error is the one reported.
            raise failed.exceptions[0] from None
        after = _stats(self.sink)
        written, duplicates, dead = (a - b for a, b in zip(after, before, strict=True))
        if not isinstance(self.sink, BatchingSink):
            written = self._read
        return ReplaySummary(
            len(partitions),
            self._skipped,
            self._read,
            written,
            duplicates,
            dead,
            malformed=int(getattr(self.reader, "malformed", 0)),
            unreadable_objects=int(getattr(self.reader, "unreadable_objects", 0)),
        )

    async def _partition(self, partition: str) -> None:
        async with self._slots:
            await self.store.create_if_absent(partition)
            lease = await self.store.acquire(partition, self.owner)
            if lease.is_shard_end:
                self._skipped += 1
                await self.store.release(lease)
                return
            async for records, token in self.reader.read(partition, lease.checkpoint):
                if records:
                    await self.sink.write(records)
                    self._read += len(records)
                lease = await self.store.checkpoint(lease, token)
                if self._on_progress is not None:
                    self._on_progress(partition, len(records))
            lease = await self.store.checkpoint(lease, SHARD_END)
            await self.store.release(lease)


def _stats(sink: Sink) -> tuple[int, int, int]:
    if isinstance(sink, BatchingSink):
        return sink.stats.written, sink.stats.duplicates, sink.stats.dead_lettered
    return 0, 0, 0
