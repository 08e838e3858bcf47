"""A replay or backfill job: read a bounded range into a sink, resumably, and summarise.

The job is a :class:`~consumers.pipeline.Pipeline` over a bounded source
(:class:`~consumers.replay.source.RangeSource`): the same transform, write workflow
(resend only what failed, bisect, dead-letter with the position), back-pressure and
checkpointing as the long-running consumer.  Its progress lives in a checkpoint store of its
*own* namespace (e.g. ``replay-<name>``), one lease per partition, so a crashed job resumes
where it stopped and never touches a live consumer's checkpoints.  A partition whose range
was fully resolved is marked ``SHARD_END`` and skipped by a rerun.  Because sinks are
idempotent, records written after the last checkpoint and before a crash are simply written
again on resume.  When a partition's reader fails or records can be neither written nor
dead-lettered, the job stops after checkpointing what is resolved and raises the cause: a
rerun resumes every partition from its checkpoint.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import ClassVar

from consumers.checkpoint.base import CheckpointStore
from consumers.pipeline import Pipeline, PipelineConfig, Transform
from consumers.replay.ranges import RangeReader
from consumers.replay.source import ProgressCallback, RangeSource
from consumers.sinks.base import DeadLetter, Sink
from shardline.metrics import MetricsObserver

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


class ReplayJob:
    """Reads every partition of ``reader`` through a pipeline into ``sink``, checkpointing in ``store``."""

    def __init__(
        self,
        reader: RangeReader,
        sink: Sink,
        store: CheckpointStore,
        *,
        owner: str | None = None,
        concurrency: int = 4,
        on_progress: ProgressCallback | None = None,
        transform: Transform | None = None,
        dead_letter: DeadLetter | None = None,
        config: PipelineConfig | None = None,
        observer: MetricsObserver | None = None,
    ) -> None:
        self.reader = reader
        self.sink = sink
        self.store = store
        self.owner = owner or f"replay-{uuid.uuid4().hex[:12]}"
        self.source = RangeSource(
            reader, store, owner=self.owner, concurrency=concurrency, on_progress=on_progress
        )
        self.pipeline = Pipeline(
            self.source,
            sink,
            config=config if config is not None else PipelineConfig(partition_concurrency=1),
            dead_letter=dead_letter,
            transform=transform,
            observer=observer,
        )

    def __repr__(self) -> str:
        return f"ReplayJob(reader={self.reader!r}, sink={self.sink!r})"

    async def run(self) -> ReplaySummary:
        stats = await self.pipeline.run()
        if self.source.failure is not None:  # a lease taken after every batch was read
            raise self.source.failure
        return ReplaySummary(
            self.source.partitions,
            self.source.skipped,
            self.source.read,
            stats.records_out - stats.duplicates,
            stats.duplicates,
            stats.dead_lettered,
            malformed=int(getattr(self.reader, "malformed", 0)),
            unreadable_objects=int(getattr(self.reader, "unreadable_objects", 0)),
        )

    async def close(self, timeout: float | None = None) -> None:
        """Stop the job: drain and checkpoint within ``timeout`` s (see :meth:`Pipeline.close`)."""
        await self.pipeline.close(timeout)
