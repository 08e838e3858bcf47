"""Which position of a partition may be checkpointed: the acknowledgement tracker.

Records of a partition are handed out in order as *tickets* (a ticket is a contiguous run of
records, typically one sink batch) that may complete in any order when several writes are
in flight.  A checkpoint must never pass the lowest record whose ticket is not finished
(at-least-once; RELIABILITY row 2), so the tracker keeps the tickets of each partition in
issue order and advances a watermark over the finished prefix only.

Pure bookkeeping, no I/O and no asyncio: the pipeline drives it, the property test
exercises it with arbitrary completion orders.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from shardline.records import Position

__all__ = ["AckTracker", "PartitionProgress", "Ticket"]


@dataclass(slots=True, eq=False)
class Ticket:
    """A contiguous run of one partition's records, finished all at once.

    ``last_position`` is the position of the run's last record (``None`` for an empty run,
    e.g. the end marker of a closed shard).  ``end_of_partition`` marks the final ticket of a
    closed partition.
    """

    partition: str
    serial: int
    record_count: int
    last_position: Position | None
    end_of_partition: bool = False
    done: bool = False
    acknowledged_records: int = 0
    """Leading records finished although the ticket as a whole is not (see
    :meth:`AckTracker.acknowledge_prefix`)."""
    acknowledged_position: Position | None = None
    credited_records: int = 0
    """Records of this ticket already behind the partition's watermark."""


@dataclass(slots=True)
class PartitionProgress:
    """The tracker's view of one partition."""

    pending: deque[Ticket] = field(default_factory=deque)
    next_serial: int = 0
    committable: Position | None = None
    """Highest position below which every issued record is finished."""
    ended: bool = False
    """Every record of the closed partition is finished (its end ticket too)."""
    unfinished_records: int = 0
    uncommitted_records: int = 0
    """Finished records not yet covered by a successful checkpoint."""


class AckTracker:
    """Per-partition watermark over tickets that finish out of order."""

    __slots__ = ("_partitions",)

    def __init__(self) -> None:
        self._partitions: dict[str, PartitionProgress] = {}

    def issue(
        self,
        partition: str,
        record_count: int,
        last_position: Position | None,
        *,
        end_of_partition: bool = False,
    ) -> Ticket:
        """Register the next run of ``partition``'s records, in partition order."""
        progress = self._partitions.setdefault(partition, PartitionProgress())
        ticket = Ticket(partition, progress.next_serial, record_count, last_position, end_of_partition)
        progress.next_serial += 1
        progress.pending.append(ticket)
        progress.unfinished_records += record_count
        return ticket

    def finish(self, ticket: Ticket) -> bool:
        """Mark ``ticket`` finished; return whether the partition's watermark moved."""
        if ticket.done:
            return False
        ticket.done = True
        progress = self._partitions[ticket.partition]
        progress.unfinished_records -= ticket.record_count - ticket.acknowledged_records
        return self._advance(progress)

    def acknowledge_prefix(self, ticket: Ticket, record_count: int, last_position: Position) -> bool:
        """The first ``record_count`` records of an unfinished ``ticket`` (up to
        ``last_position``) are finished, the rest are not; return whether the watermark moved.

        Used when a write fails part-way: what was written before the failing record may be
        checkpointed, so a restart resumes at that record instead of the ticket's first.
        """
        if ticket.done or record_count <= ticket.acknowledged_records:
            return False
        if record_count > ticket.record_count:
            raise ValueError("cannot acknowledge more records than the ticket holds")
        progress = self._partitions[ticket.partition]
        progress.unfinished_records -= record_count - ticket.acknowledged_records
        ticket.acknowledged_records = record_count
        ticket.acknowledged_position = last_position
        return self._advance(progress)

    @staticmethod
    def _advance(progress: PartitionProgress) -> bool:
        """Move the watermark over the finished head tickets, then into a partly finished one."""
        moved = False
        while progress.pending and progress.pending[0].done:
            head = progress.pending.popleft()
            progress.uncommitted_records += head.record_count - head.credited_records
            if head.last_position is not None:
                progress.committable = head.last_position
            if head.end_of_partition:
                progress.ended = True
            moved = True
        if progress.pending:
            head = progress.pending[0]
            if head.acknowledged_position is not None and head.credited_records < head.acknowledged_records:
                progress.uncommitted_records += head.acknowledged_records - head.credited_records
                head.credited_records = head.acknowledged_records
                progress.committable = head.acknowledged_position
                moved = True
        return moved

    def committable(self, partition: str) -> Position | None:
        """Highest position that may be checkpointed now (``None``: nothing finished yet)."""
        progress = self._partitions.get(partition)
        return None if progress is None else progress.committable

    def progress(self, partition: str) -> PartitionProgress | None:
        return self._partitions.get(partition)

    def partitions(self) -> list[str]:
        return list(self._partitions)

    def mark_committed(self, partition: str) -> None:
        """The watermark was checkpointed: nothing finished is left uncommitted."""
        progress = self._partitions.get(partition)
        if progress is not None:
            progress.uncommitted_records = 0

    def forget(self, partition: str) -> None:
        """Drop a partition (its lease was lost, or it ended and was checkpointed)."""
        self._partitions.pop(partition, None)

    @property
    def unfinished_records(self) -> int:
        return sum(progress.unfinished_records for progress in self._partitions.values())
