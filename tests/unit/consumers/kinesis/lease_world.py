"""Several KinesisSource workers over one lease table and one stream, on virtual time.

Each :class:`Worker` runs a real :class:`KinesisSource` and the loop a pipeline runs around
it: a batch is written to the shared :class:`World` sink, then its last position is
checkpointed (SHARD_END after a shard's last batch), retriable store errors retried for a
lease's expiry, a lost lease left to its new holder.  What happens to a worker is what
happens to a process:

* paused (SIGSTOP): its timers, store calls, Kinesis calls and sink writes wait at its gate,
  even halfway through a call (the store applied it, the answer waits); its clock goes on;
* dead (kill -9): its tasks are cancelled and it releases nothing;
* stopped: :meth:`KinesisSource.stop`, then the close a pipeline makes;
* cut off from the store for a while or for good, each call refused before it is applied or
  applied with its answer lost (a timeout after the write);
* slow to take: its next take of another worker's lease reaches the store only after
  :data:`SLOW_TAKE` (the holder's renewal races it).

The world checks the invariants where they can break: at every take, every checkpoint, every
sink write, and at every instant the loop settled (:meth:`World.observe`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Literal, TypeVar

from consumers.checkpoint.base import Lease
from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.kinesis import KinesisSource, ReaderConfig
from consumers.source import SourceBatch
from shardline.errors import (
    AccessDeniedError,
    CheckpointError,
    LeaseLostError,
    ShardlineError,
    TransientServiceError,
)
from shardline.records import SHARD_END, KinesisPosition
from tests.unit.consumers.kinesis.stream_double import Stream, StreamClient
from tests.unit.consumers.kinesis.virtual_time import VirtualTime

__all__ = ["EXPIRY", "STOP_BOUND", "TAKE_BOUND", "Worker", "World"]

RENEW = 1.0
DISCOVERY = 1.0
EXPIRY = 3 * RENEW
"""KinesisSource's lease expiry: three renewal intervals."""
SLOW_TAKE = 1.5 * RENEW
TAKE_BOUND = EXPIRY + 2 * DISCOVERY
"""How long a readable shard may go unread while a worker able to take it is up.

The holder's last counter is first listed up to one discovery interval after it was written;
the take comes at the first listing an expiry after that, up to one more interval later.  A
worker waiting on a slow take is not up meanwhile (the takes of one listing run one by one)."""
OUTAGE_LIMIT = EXPIRY
"""How long the loop retries a checkpoint before it gives up (the pipeline's default)."""
STOP_BOUND = OUTAGE_LIMIT + 2 * RENEW
"""How long a worker's run may take to end after it was stopped."""
CONFIG = ReaderConfig(
    lease_renew_interval=RENEW,
    shard_discovery_interval=DISCOVERY,
    idle_backoff_initial=0.25,
    idle_backoff_max=1.0,
    max_pending_batches=2,
)

State = Literal["running", "paused", "dead", "stopped"]
_T = TypeVar("_T")


class ObservedStore(MemoryCheckpointStore):
    """The shared lease table, readable without a call, noting since when each lease's owner
    and counter stood still (for the invariants only)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self._now = clock
        self.still_since: dict[str, float] = {}

    def peek(self, shard_id: str) -> Lease | None:
        return self._leases.get(shard_id)

    async def _noting(self, shard_id: str, change: Awaitable[_T]) -> _T:
        before = self.peek(shard_id)
        try:
            return await change
        finally:
            after = self.peek(shard_id)
            if after is not None and (
                before is None or (before.owner, before.counter) != (after.owner, after.counter)
            ):
                self.still_since[shard_id] = self._now()

    async def create_if_absent(
        self, shard_id: str, parent_shard_ids: Sequence[str] = (), *, initial_position: str = "TRIM_HORIZON"
    ) -> None:
        change = super().create_if_absent(shard_id, parent_shard_ids, initial_position=initial_position)
        await self._noting(shard_id, change)

    async def acquire(self, shard_id: str, owner: str, *, expected: Lease | None = None) -> Lease:
        return await self._noting(shard_id, super().acquire(shard_id, owner, expected=expected))

    async def renew(self, lease: Lease) -> Lease:
        return await self._noting(lease.shard_id, super().renew(lease))

    async def release(self, lease: Lease) -> None:
        await self._noting(lease.shard_id, super().release(lease))


class Worker:
    """One process: a KinesisSource, the loop that consumes it, and what happens to both."""

    def __init__(self, world: World, name: str, clock_offset: float) -> None:
        self.world = world
        self.name = name
        self.clock_offset = clock_offset
        self.state: State = "running"
        self.gate = asyncio.Event()
        self.gate.set()
        self.up_since = world.time.now
        self.outage_until = -math.inf
        self.outage_refuses = False
        """Permanent refusals (access denied) rather than an unreachable store."""
        self.outage_lost_answers = False
        self.had_outage = False
        self.slow_takes = 0
        self.slow_until = -math.inf
        self.delivered: dict[str, set[int]] = {}
        self.ended: set[str] = set()
        self.failure: BaseException | None = None
        self.stopped_at: float | None = None
        self.finished_at: float | None = None
        self.source = KinesisSource(
            "stream",
            store=WorkerStore(self, world.store),
            owner=name,
            client=StreamClient(world.stream, self.awake),
            config=CONFIG,
            clock=self.clock,
            sleep=self.sleep,
        )
        self.task = asyncio.create_task(self._run(), name=f"worker-{name}")

    def __repr__(self) -> str:
        return f"Worker({self.name}, {self.state}, shards={self.source.shards})"

    # --- the process's view of time and of the world ----------------------------------------

    def clock(self) -> float:
        return self.world.time.now + self.clock_offset  # machines' clocks are never compared

    async def awake(self) -> None:
        await self.gate.wait()

    async def sleep(self, seconds: float) -> None:
        await self.world.time.sleep(seconds)
        await self.awake()

    def healthy_since(self) -> float:
        """Since when it runs, renews and reaches the store (``inf``: not now)."""
        if self.state != "running" or self.finished_at is not None:
            return math.inf
        return max(self.up_since, self.outage_until, self.slow_until)

    def healthy(self) -> bool:
        return self.healthy_since() <= self.world.time.now

    def outage_now(self) -> bool:
        return self.world.time.now < self.outage_until

    def outage_error(self) -> ShardlineError:
        if self.outage_refuses:
            return AccessDeniedError("the store refuses this worker")
        return TransientServiceError("the store is unreachable")

    # --- what happens to it ---------------------------------------------------------------------

    def pause(self) -> None:
        if self.state == "running":
            self.state = "paused"
            self.gate.clear()

    def resume(self) -> None:
        if self.state == "paused":
            self.state = "running"
            self.up_since = self.world.time.now
            self.gate.set()

    def cut_off(self, seconds: float | None, *, refuses: bool, lost_answers: bool) -> None:
        now = self.world.time.now
        self.outage_until = math.inf if seconds is None else max(self.outage_until, now + seconds)
        self.outage_refuses = refuses and seconds is None
        self.outage_lost_answers = lost_answers
        self.had_outage = True

    def reconnect(self) -> None:
        if self.outage_until != math.inf:
            self.outage_until = min(self.outage_until, self.world.time.now)

    async def die(self) -> None:
        if self.state in ("running", "paused"):
            self.state = "dead"
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def stop(self) -> None:
        if self.state in ("running", "paused"):
            self.resume()
            self.state = "stopped"
            self.stopped_at = self.world.time.now
            await self.source.stop()

    # --- the loop a pipeline runs -----------------------------------------------------------

    async def _run(self) -> None:
        batches = self.source.batches()
        try:
            async for batch in batches:
                await self.awake()
                self.world.write(self, batch)
                if batch.records:
                    position = batch.records[-1].position
                    await self._checkpoint(partial(self.source.checkpoint, batch.partition, position))
                if batch.end_of_partition:
                    await self._checkpoint(partial(self.source.checkpoint_end, batch.partition))
        except ShardlineError as exc:
            self.failure = exc
        finally:
            close = getattr(batches, "aclose", None)  # ends the source's tasks, as a pipeline does
            if close is not None:
                await close()
            self.finished_at = self.world.time.now
            if self.state != "dead":
                await self.source.close()

    async def _checkpoint(self, write: Callable[[], Awaitable[object]]) -> None:
        failing_since: float | None = None
        while True:
            try:
                await write()
                return
            except LeaseLostError:
                return  # its new holder reads on from its own checkpoint
            except ShardlineError as exc:
                if not exc.retriable:
                    raise
                now = self.world.time.now
                failing_since = now if failing_since is None else failing_since
                if now - failing_since >= OUTAGE_LIMIT:
                    raise CheckpointError("checkpoints kept failing") from exc
                await self.sleep(RENEW)


class WorkerStore:
    """One worker's connection to the shared lease table: gated, cut off at will, watched."""

    def __init__(self, worker: Worker, inner: ObservedStore) -> None:
        self.worker = worker
        self.inner = inner

    async def _call(self, apply: Callable[[], Awaitable[_T]]) -> _T:
        worker = self.worker
        await worker.awake()
        worker.world.time.touch()
        failing = worker.outage_now()
        if failing and not worker.outage_lost_answers:
            raise worker.outage_error()
        result = await apply()
        if failing:
            raise worker.outage_error()  # applied, but the answer never came
        await worker.awake()  # paused while the answer travels back
        return result

    async def create_if_absent(
        self, shard_id: str, parent_shard_ids: Sequence[str] = (), *, initial_position: str = "TRIM_HORIZON"
    ) -> None:
        await self._call(
            lambda: self.inner.create_if_absent(shard_id, parent_shard_ids, initial_position=initial_position)
        )

    async def get(self, shard_id: str) -> Lease | None:
        return await self._call(lambda: self.inner.get(shard_id))

    async def list(self) -> list[Lease]:
        return await self._call(self.inner.list)

    async def acquire(self, shard_id: str, owner: str, *, expected: Lease | None = None) -> Lease:
        worker = self.worker
        held = self.inner.peek(shard_id)
        if held is not None and held.owner not in (None, owner) and worker.slow_takes:
            worker.slow_takes -= 1
            worker.slow_until = worker.world.time.now + SLOW_TAKE
            await worker.sleep(SLOW_TAKE)

        async def take() -> Lease:
            before = self.inner.peek(shard_id)
            still_since = self.inner.still_since.get(shard_id, 0.0)
            taken = await self.inner.acquire(shard_id, owner, expected=expected)
            worker.world.on_take(worker, before, still_since)
            return taken

        return await self._call(take)

    async def renew(self, lease: Lease) -> Lease:
        return await self._call(lambda: self.inner.renew(lease))

    async def checkpoint(self, lease: Lease, sequence_number: str, sub_sequence_number: int = 0) -> Lease:
        async def write() -> Lease:
            before = self.inner.peek(lease.shard_id)
            written = await self.inner.checkpoint(lease, sequence_number, sub_sequence_number)
            self.worker.world.on_checkpoint(self.worker, before, written)
            return written

        return await self._call(write)

    async def release(self, lease: Lease) -> None:
        await self._call(lambda: self.inner.release(lease))

    async def close(self) -> None:
        return None


class World:
    """The stream, the lease table, the sink, the workers, and the invariants over them."""

    def __init__(self, shard_count: int) -> None:
        self.time = VirtualTime()
        self.initial_shards = shard_count
        self.stream = Stream(shard_count)
        self.store = ObservedStore(self.time.clock)
        self.workers: list[Worker] = []
        self.written: set[tuple[str, int]] = set()
        self.unheld_since: dict[str, float] = {}
        """Per readable shard: the last instant it was read by a healthy worker (or not readable)."""

    def start(self, name: str, clock_offset: float = 0.0) -> Worker:
        worker = Worker(self, name, clock_offset)
        self.workers.append(worker)
        return worker

    def worker(self, name: str | None) -> Worker | None:
        return next((worker for worker in self.workers if worker.name == name), None)

    # --- invariants at the moment things happen -------------------------------------------------

    def write(self, worker: Worker, batch: SourceBatch) -> None:
        """The sink: a child's record is written only once its parents' records all are."""
        shard = self.stream.shards[batch.partition]
        for record in batch.records:
            position = record.position
            assert isinstance(position, KinesisPosition)
            for parent in shard.parents:
                missing = self._unwritten(parent)
                assert not missing, f"{batch.partition} written before {parent}'s {sorted(missing)}"
            number = int(position.sequence_number)
            self.written.add((batch.partition, number))
            worker.delivered.setdefault(batch.partition, set()).add(number)
        if batch.end_of_partition:
            worker.ended.add(batch.partition)

    def on_take(self, taker: Worker, before: Lease | None, still_since: float) -> None:
        """Another worker's lease is taken only once its owner and counter stood still for the
        expiry; so a lease a live worker renews is never taken from it."""
        holder = self.worker(before.owner if before is not None else None)
        if before is None or holder is None or holder is taker:
            return
        stood = self.time.now - still_since
        assert stood >= EXPIRY, (
            f"{taker.name} took {before.shard_id} from {holder.name} renewed {stood:.2f} s ago"
        )
        renewing = holder.healthy_since() <= self.time.now - EXPIRY
        assert not (renewing and before.shard_id in holder.source.shards), (
            f"{taker.name} took {before.shard_id} from {holder.name}, which renewed it all along"
        )

    def on_checkpoint(self, writer: Worker, before: Lease | None, after: Lease) -> None:
        """Fenced, never backwards, never past what its writer was given or an unwritten record."""
        shard_id = after.shard_id
        assert after.owner == writer.name, f"{writer.name} checkpointed {shard_id} held by {after.owner}"
        previous = before.checkpoint if before is not None else None
        if after.checkpoint == SHARD_END:
            assert shard_id in writer.ended, f"{writer.name} ended {shard_id} without reading its end"
            missing = self._unwritten(shard_id)
        else:
            assert after.checkpoint is not None
            number = int(after.checkpoint)
            assert number in writer.delivered.get(shard_id, set()), (
                f"{writer.name} checkpointed {shard_id} at {number}, which it was never given"
            )
            assert previous != SHARD_END, f"{writer.name} moved {shard_id} back from SHARD_END"
            assert previous is None or int(previous) <= number, (
                f"{writer.name} moved {shard_id} back from {previous} to {number}"
            )
            missing = {n for n in self._unwritten(shard_id) if n <= number}
        assert not missing, f"{shard_id} checkpointed at {after.checkpoint} past unwritten {sorted(missing)}"

    def _unwritten(self, shard_id: str) -> set[int]:
        numbers = self.stream.shards[shard_id].sequence_numbers
        return {number for number in numbers if (shard_id, number) not in self.written}

    # --- invariants at every settled instant ----------------------------------------------------

    def finished(self, shard_id: str) -> bool:
        lease = self.store.peek(shard_id)
        return lease is not None and lease.is_shard_end

    def observe(self) -> None:
        """A readable shard is read by a healthy worker within :data:`TAKE_BOUND` of the moment
        it stopped being read, whenever a worker able to take it is up that long."""
        now = self.time.now
        for shard in self.stream.shards.values():
            shard_id = shard.shard_id
            readable = all(self.finished(parent) for parent in shard.parents)
            holder = self.worker(lease.owner) if (lease := self.store.peek(shard_id)) is not None else None
            read = holder is not None and holder.healthy() and shard_id in holder.source.shards
            if read or not readable or self.finished(shard_id) or shard_id not in self.unheld_since:
                self.unheld_since[shard_id] = now
                continue
            for worker in self.workers:
                waited = now - max(worker.healthy_since(), self.unheld_since[shard_id])
                assert waited <= TAKE_BOUND, (
                    f"{shard_id} unread for {waited:.2f} s while {worker.name} was up "
                    f"(lease {self.store.peek(shard_id)}, workers {self.workers})"
                )

    def unwritten(self) -> set[tuple[str, int]]:
        return self.stream.records() - self.written
