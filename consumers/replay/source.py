"""A bounded range as a pipeline source: replay and backfill run through the one pipeline.

:class:`RangeSource` reads the partitions of a :class:`~consumers.replay.ranges.RangeReader`
(``concurrency`` at a time) and yields their batches to a
:class:`~consumers.pipeline.Pipeline`, which transforms, writes, bisects and dead-letters
exactly as the long-running consumer does.  Progress lives in a checkpoint store of the
job's own namespace: when the pipeline says a partition is acknowledged up to a record, the
source persists the reader's resume token of the batch that record ends; a checkpoint that
falls inside a batch waits for the batch's end (the token is per batch).  A partition read
to its end is marked ``SHARD_END`` once every record of it is resolved, and is skipped by a
rerun.

A reader that defines ``parents(partition)`` (the Kinesis range reader: a child shard of a
split or merge) has each partition read only once every parent among the job's partitions is
finished (``SHARD_END``, every record resolved), as the live consumer reads shards: read side
by side, a parent's older record of a key could be written after the child's newer one.

``concurrency`` reader tasks, owned by the source, take the partitions one after another
(parents first); a reader's failure is handed to :meth:`RangeSource.batches`, so
:meth:`Pipeline.run` raises it.

A bounded job hands no partition to anyone: a lease it loses was taken by another run of the
same job (the same checkpoint namespace, or a slice taken over after its runner stalled).
The source then stops the job with :class:`PartitionTakenError` instead of reading on beside
the other run (and waiting forever for a lost parent's end, which only the other run records).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from consumers.checkpoint.base import CheckpointStore, Lease
from consumers.replay.ranges import RangeReader
from consumers.source import SourceBatch, names_of
from shardline.errors import LeaseLostError, ShardlineError
from shardline.records import SHARD_END, Position
from shardline.tasks import stray_cancel

__all__ = ["PartitionTakenError", "RangeSource"]

_log = logging.getLogger(__name__)


class PartitionTakenError(LeaseLostError):
    """Another run of the same replay job took a partition's lease: this run stops, the other goes on."""


ProgressCallback = Callable[[str, int], None]
"""Called with (partition, records just read) after each batch; what it raises is logged, never
stops the job."""


@dataclass(slots=True)
class _Partition:
    lease: Lease
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: deque[tuple[Position | None, str]] = field(default_factory=deque)
    """(last record position, resume token) per batch handed out, not yet checkpointed."""
    released: bool = False


class RangeSource:
    """The partitions of ``reader`` as a :class:`~consumers.source.Source`, resumable via ``store``."""

    def __init__(
        self,
        reader: RangeReader,
        store: CheckpointStore,
        *,
        owner: str,
        concurrency: int = 4,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.reader = reader
        self.store = store
        self.owner = owner
        self.read = 0
        self.skipped = 0
        self.partitions = 0
        self.progress_failures = 0
        self._concurrency = concurrency
        self._on_progress = on_progress
        self._open: dict[str, _Partition] = {}
        self._output: asyncio.Queue[SourceBatch | BaseException | None] = asyncio.Queue(
            maxsize=concurrency * 2
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.failure: PartitionTakenError | None = None
        """Set when a lease was taken by another run; the job stops with it."""
        self._finished: dict[str, asyncio.Event] = {}
        """Per partition with children in the job: set once it is at ``SHARD_END``, so they may be read."""

    def __repr__(self) -> str:
        return f"RangeSource(reader={self.reader!r}, owner={self.owner!r})"

    async def batches(self) -> AsyncIterator[SourceBatch]:
        partitions = await self.reader.partitions()
        self.partitions = len(partitions)
        in_job = set(partitions)
        parents = {partition: self._parents_in_job(partition, in_job) for partition in partitions}
        self._finished = {parent: asyncio.Event() for waits in parents.values() for parent in waits}
        queue = deque(_parents_first(partitions, parents))
        self._tasks = [
            asyncio.create_task(self._work(queue, parents), name=f"replay-reader-{number}")
            for number in range(min(self._concurrency, len(partitions)))
        ]
        finisher = asyncio.create_task(self._finish_when_read(), name="replay-reads-done")
        try:
            while True:
                item = await self._output.get()
                if self.failure is not None:  # queued behind batches when the queue was full
                    raise self.failure
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stopping = True
            for task in [*self._tasks, finisher]:
                task.cancel()
            await asyncio.gather(*self._tasks, finisher, return_exceptions=True)

    async def _finish_when_read(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._output.put(None)

    def _parents_in_job(self, partition: str, in_job: set[str]) -> tuple[str, ...]:
        """The partitions of this job that must be finished before ``partition`` is read."""
        parents: Callable[[str], Sequence[str]] | None = getattr(self.reader, "parents", None)
        if parents is None:
            return ()
        return tuple(parent for parent in parents(partition) if parent in in_job)

    async def _work(self, queue: deque[str], parents: dict[str, tuple[str, ...]]) -> None:
        """One of ``concurrency`` readers: the next partition of ``queue`` until none is left.

        A fixed set of readers, not a task per partition: an archive backfill has a partition
        per object, and a million waiting tasks held ~2.3 GiB before the first was read.
        ``queue`` lists parents before their children, so a reader that waits for a child's
        parents waits for partitions already taken by other readers (or finished): the
        earliest partition taken and not finished has its parents finished and is being read,
        so the job always moves on.
        """
        partition = None
        try:
            while queue and not self._stopping:
                partition = queue.popleft()
                for parent in parents[partition]:
                    await self._finished[parent].wait()
                if self._stopping:
                    return
                await self._read_partition(partition)
        except BaseException as exc:  # noqa: BLE001 - handed to the pipeline through batches()
            # one nobody sent, re-raised, ended the read quietly: the job reported success
            # with the partition unfinished
            await self._output.put(stray_cancel(exc, f"the reader of {partition or 'the replay'}"))

    async def _read_partition(self, partition: str) -> None:
        await self.store.create_if_absent(partition)
        lease = await self.store.acquire(partition, self.owner)
        if lease.is_shard_end:
            self.skipped += 1
            await self.store.release(lease)
            self._set_finished(partition)
            return
        state = _Partition(lease)
        self._open[partition] = state
        async for records, token in self.reader.read(partition, lease.checkpoint):
            if self._stopping:
                return
            self.read += len(records)
            if records:
                last = records[-1].position
                state.pending.append((last, token))
                # a unit replays one stream or topic (a slice mixes them): its records say which
                stream, topic = names_of(last)
                await self._output.put(SourceBatch(partition, records, stream=stream, topic=topic))
            else:
                await self._advance_empty(partition, state, token)
            if self._on_progress is not None:
                self._report_progress(partition, len(records))
        await self._output.put(SourceBatch(partition, [], end_of_partition=True))

    def _set_finished(self, partition: str) -> None:
        """``partition`` is at SHARD_END: its children in the job may be read."""
        finished = self._finished.get(partition)
        if finished is not None:
            finished.set()

    def _report_progress(self, partition: str, count: int) -> None:
        """Call ``on_progress``; what it raises is logged once and counted in
        :attr:`progress_failures`, never stops the read.

        Progress is reporting, as a metrics observer is: raised in the partition reader, a
        failing display ended the whole job.
        """
        assert self._on_progress is not None
        try:
            self._on_progress(partition, count)
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - contained by design
            # synchronous, so a CancelledError here is the callback's own, not a cancellation
            self.progress_failures += 1
            if self.progress_failures == 1:
                _log.warning(
                    "the progress callback raised; later failures are counted, not logged",
                    extra={"error_type": type(exc).__name__},
                )

    async def _advance_empty(self, partition: str, state: _Partition, token: str) -> None:
        """A batch without records (e.g. only malformed lines) moves the token on its own."""
        async with state.lock:
            if state.pending:
                position, _ = state.pending.pop()
                state.pending.append((position, token))
            else:
                state.lease = await self._checkpointed(partition, state.lease, token)

    async def _checkpointed(self, partition: str, lease: Lease, token: str) -> Lease:
        """``store.checkpoint``; a lease taken by another run stops the job (:meth:`_taken`)."""
        try:
            return await self.store.checkpoint(lease, token)
        except LeaseLostError as exc:
            raise self._taken(partition) from exc

    def _taken(self, partition: str) -> PartitionTakenError:
        """Stop the job: another run of it holds ``partition`` now.

        The error goes to :meth:`batches` (so the pipeline stops with it) and to
        :attr:`failure` (so :class:`~consumers.replay.job.ReplayJob` raises it should the
        reading have ended already).  Read on, this run wrote the partition a second time
        beside the other run, reported success without having finished it, and a child of a
        partition lost so waited forever for the end only the other run records.
        """
        if self.failure is None:
            self.failure = PartitionTakenError(
                f"the lease of {partition[:128]!r} was taken by another run of this job (the same "
                "checkpoint namespace): two runs of one job never run at once, so this one stops; "
                "the other goes on from the checkpoints"
            )
            self._stopping = True
            with contextlib.suppress(asyncio.QueueFull):  # else batches() finds it after its next item
                self._output.put_nowait(self.failure)
        return self.failure

    async def checkpoint(self, partition: str, position: Position) -> bool:
        """Persist the resume token of the batch that ``position`` ends, if it ends one
        (``False`` when it ends none: nothing is persisted).

        The batch is found by the position object itself: the pipeline hands back the very
        ``Position`` of the record it acknowledged.  Matching by identity (equal values) found
        the wrong batch when a record repeats (an archive's at-least-once duplicate): a write
        failing inside one batch checkpointed the end of a later one that ends with a copy of
        the acknowledged record, and a rerun skipped every record in between.
        """
        state = self._open.get(partition)
        if state is None:
            return False
        async with state.lock:
            token = None
            for index, (last, candidate) in enumerate(state.pending):
                if last is position:
                    token = candidate
                    for _ in range(index + 1):
                        state.pending.popleft()
                    break
            if token is None:
                return False
            state.lease = await self._checkpointed(partition, state.lease, token)
            return True

    async def checkpoint_end(self, partition: str) -> None:
        state = self._open.pop(partition, None)
        if state is None:
            return
        async with state.lock:
            state.lease = await self._checkpointed(partition, state.lease, SHARD_END)
            state.released = True
            await self.store.release(state.lease)
        self._set_finished(partition)

    async def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(asyncio.QueueFull):
            self._output.put_nowait(None)

    async def close(self, timeout: float | None = None) -> None:
        """Stop, then give up the leases still held (their checkpoints stay), within ``timeout`` s."""
        await self.stop()
        try:
            async with asyncio.timeout(timeout):
                for partition, state in list(self._open.items()):
                    async with state.lock:
                        if not state.released:
                            with contextlib.suppress(ShardlineError):
                                await self.store.release(state.lease)
                            state.released = True
                    self._open.pop(partition, None)
        except TimeoutError:
            _log.warning("releasing replay leases timed out; they expire on their own")


def _parents_first(partitions: Sequence[str], parents: dict[str, tuple[str, ...]]) -> list[str]:
    """``partitions`` in their order, except that each comes after its parents (a stable
    topological order; a cycle, which no shard lineage has, keeps its members in order)."""
    ordered: list[str] = []
    placed: set[str] = set()
    waiting = list(partitions)
    while waiting:
        ready = [partition for partition in waiting if all(parent in placed for parent in parents[partition])]
        if not ready:
            ready = waiting  # a cycle: nothing would ever be ready
        ready_set = set(ready)
        ordered.extend(ready)
        placed.update(ready)
        waiting = [partition for partition in waiting if partition not in ready_set]
    return ordered
