"""Run the pipeline over one batch that an outside engine handed us (KCL daemon, Lambda).

Those engines own reading, leases and checkpoint storage; Shardline only has to write the
batch through the same transform / sink / retry / bisection / dead-letter logic as the
long-running consumer and say how far the batch is safely acknowledged.  A
:class:`BatchSource` feeds the records to a :class:`~consumers.pipeline.Pipeline` and
captures the watermark the pipeline would have checkpointed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from consumers.pipeline import Pipeline, PipelineConfig, PipelineStats, Transform
from consumers.sinks.base import DeadLetter, Sink
from consumers.source import SourceBatch, names_of
from shardline.errors import SinkError
from shardline.metrics import MetricsObserver
from shardline.records import ConsumedRecord, Position
from shardline.retry import RetryPolicy

__all__ = ["BatchOutcome", "BatchSource", "process_batch"]

ONE_BATCH_CONFIG = PipelineConfig(
    # checkpoints happen once, when the pipeline drains at the end of the batch
    checkpoint_interval=3600.0,
    # the KCL's bound is its checkpoint protocol: the worker exits on a failed batch and the
    # shard resumes from its checkpoint once a worker takes it, so an outage is waited out
    # for a minute, not forever: then the batch fails with nothing dead-lettered.  Lambda
    # replaces this with its invocation deadline (``deadline`` of :func:`process_batch`)
    sink_retry=RetryPolicy(max_attempts=None, initial_backoff=0.1, max_backoff=5.0, deadline=60.0),
)


class BatchSource:
    """A :class:`~consumers.source.Source` over records already in memory, one batch per partition."""

    def __init__(self, batches: Sequence[SourceBatch]) -> None:
        self._batches = list(batches)
        self.watermarks: dict[str, Position] = {}
        self.ended: set[str] = set()

    async def batches(self) -> AsyncIterator[SourceBatch]:
        for batch in self._batches:
            yield batch

    async def checkpoint(self, partition: str, position: Position) -> bool:
        self.watermarks[partition] = position
        return True

    async def checkpoint_end(self, partition: str) -> None:
        self.ended.add(partition)

    async def stop(self) -> None:
        self._batches = []

    async def close(self, timeout: float | None = None) -> None:
        """Nothing to release: the outside engine owns the leases."""
        self._batches = []


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """How far each partition of the batch is acknowledged, and why it stopped if it did."""

    watermarks: dict[str, Position]
    stats: PipelineStats
    failure: SinkError | None = None
    """Why some records are not acknowledged (outage bound, deadline, no dead letter)."""

    def acknowledged(self, record: ConsumedRecord) -> bool:
        """Whether ``record`` was written or dead-lettered (at or below its partition's watermark)."""
        if self.failure is None:
            return True
        watermark = self.watermarks.get(record.position.partition)
        return (
            watermark is not None
            and type(watermark) is type(record.position)
            and (record.position <= watermark)
        )


async def process_batch(
    records_by_partition: dict[str, list[ConsumedRecord]],
    sink: Sink,
    *,
    transform: Transform | None = None,
    dead_letter: DeadLetter | None = None,
    config: PipelineConfig | None = None,
    observer: MetricsObserver | None = None,
    millis_behind_latest: int | None = None,
    deadline: float | None = None,
) -> BatchOutcome:
    """Write every record (or dead-letter it); report the acknowledged watermark per partition.

    ``deadline`` (event-loop time) bounds the whole batch: records still unwritten then are
    reported unacknowledged instead of being waited for.
    """
    batches = []
    for partition, records in records_by_partition.items():
        if records:
            # the engine hands records only: their positions say which stream or topic they are
            stream, topic = names_of(records[0].position)
            batches.append(SourceBatch(partition, records, millis_behind_latest, stream=stream, topic=topic))
    source = BatchSource(batches)
    pipeline = Pipeline(
        source,
        sink,
        config=config if config is not None else ONE_BATCH_CONFIG,
        dead_letter=dead_letter,
        transform=transform,
        observer=observer,
        deadline=deadline,
    )
    try:
        stats = await pipeline.run()
    except SinkError as exc:
        return BatchOutcome(dict(source.watermarks), pipeline.stats, exc)
    return BatchOutcome(dict(source.watermarks), stats)
