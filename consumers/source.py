"""The contract between a reader (Kinesis polling or fan-out, Kafka, replay) and the pipeline.

A source yields :class:`SourceBatch` values, each from one partition (a shard or a Kafka
topic-partition) in order.  The pipeline acknowledges records once the sink wrote them and
calls :meth:`Source.checkpoint` with the highest position below which *every* record is
acknowledged; the source persists it (checkpoint store, Kafka offset commit, replay
namespace).  ``end_of_partition`` marks the last batch of a closed shard (SHARD_END): once
it is acknowledged the pipeline calls :meth:`Source.checkpoint_end` so children may start.
When the run ends the pipeline calls :meth:`Source.close` to give the partitions up.

Each batch also names the stream (Kinesis) or topic (Kafka) its partition belongs to, so the
pipeline's metrics tell two consumers apart: a partition name alone (``shardId-000000000001``)
is the same in every stream.  Every kind of source says it the same way, in the batch.

Each batch also says under which *hold* of the partition it was read.  A source with leases
(Kinesis) may lose a partition to another worker and take it back later, from that worker's
checkpoint; it numbers its holds, and the pipeline starts a partition afresh whenever a
batch's hold differs from the one it reads under, whether or not it heard of the loss.  The
source is the only one that sees every take, so the hold comes from it alone.  A Kafka
group member numbers the group's assignments of each partition the same way: one assigned
back is read again from the group's last commit.  Sources without either (replay, the
batches an outside engine hands over) keep the default.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from shardline.records import ConsumedRecord, KafkaPosition, Position

__all__ = ["CountsLostPartitions", "Source", "SourceBatch", "names_of"]


@dataclass(frozen=True, slots=True)
class SourceBatch:
    """Records of one partition, in order, plus what the reader knew when it read them.

    ``stream`` (Kinesis) or ``topic`` (Kafka) names where the partition lives; the pipeline
    reports its metrics under that name.  ``None`` (or empty) when the source does not know
    it: the metrics then simply carry no such dimension.
    """

    partition: str
    records: Sequence[ConsumedRecord] = field(repr=False)
    millis_behind_latest: int | None = None
    end_of_partition: bool = False
    stream: str | None = None
    topic: str | None = None
    hold: int = 0
    """Which hold of the partition's lease the records were read under: a source bumps it
    each time it takes the lease (again).  Records of an earlier hold are not this worker's
    to write or checkpoint any more: whoever held the lease meanwhile read them."""


def names_of(position: Position) -> tuple[str | None, str | None]:
    """The ``(stream, topic)`` of a :class:`SourceBatch` holding a record read at ``position``.

    For sources that learn where a partition lives only from its records (replay ranges, the
    batches an outside engine hands over); an empty name is no name.
    """
    if isinstance(position, KafkaPosition):
        return None, position.topic or None
    return position.stream or None, None


@runtime_checkable
class Source(Protocol):
    """Where the pipeline's records come from, and where its checkpoints go."""

    def batches(self) -> AsyncIterator[SourceBatch]:
        """Yield batches until stopped or (for bounded jobs) the range is exhausted."""
        ...

    async def checkpoint(self, partition: str, position: Position) -> bool:
        """Persist that every record of ``partition`` up to ``position`` is acknowledged.

        Returns whether something was persisted: ``False`` when the source let the position
        go with nothing lost (a Kafka partition revoked meanwhile, whose next owner resumes
        from the last commit; a replay position inside a batch, which has no resume token).
        The pipeline counts only persisted checkpoints as written (``checkpoints_written``,
        the age of the last checkpoint on the ``consume`` progress line), and asks for a
        position let go again at its next pass (a Kafka partition the group assigned back).

        Raises :class:`~shardline.errors.LeaseLostError` once another worker holds the
        partition, and for a position read under an earlier hold of a lease taken back since
        (one asked for before the source yielded a batch of the new hold).  A batch of a new
        hold (the lease taken back, read from its checkpoint) says so in
        :attr:`SourceBatch.hold`: the pipeline starts the partition afresh.
        """
        ...

    async def checkpoint_end(self, partition: str) -> None:
        """Persist that the closed ``partition`` was fully processed (KCL's SHARD_END)."""
        ...

    async def stop(self) -> None:
        """Stop reading; ``batches()`` ends after what was already read."""
        ...

    async def close(self, timeout: float | None = None) -> None:
        """Release what the source holds (shard leases, group membership, clients).

        :meth:`consumers.pipeline.Pipeline.run` calls it after its final checkpoint, so
        another worker can take the partitions over at once instead of waiting for leases
        to expire.  ``timeout`` bounds the wait (``None``: as long as it takes); what is not
        released by then is left to expire.  Must be safe to call more than once.
        """
        ...


@runtime_checkable
class CountsLostPartitions(Protocol):
    """A source that loses partitions to other workers (leases) and counts each loss.

    A lease is lost whenever the source learns it (a renewal or a checkpoint refused),
    whether or not the pipeline has anything of that partition left to checkpoint; the
    source alone sees every loss, so it alone counts them, and
    :class:`~consumers.pipeline.PipelineStats` takes ``partitions_lost`` from it.
    """

    @property
    def partitions_lost(self) -> int:
        """How many times this source lost a partition's lease (a lease taken back and lost
        again counts twice)."""
        ...
