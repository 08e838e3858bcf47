"""KinesisSource: every readable shard of a stream, as one :class:`consumers.source.Source`.

It takes the lease of each shard nobody holds, and, by the KCL's rule, of each shard whose
holder stopped renewing its lease (its counter stood still for the expiry time, see
:mod:`consumers.kinesis.lease_expiry`), whoever held it: a shard this worker lost comes back
to it once the worker that took it dies.  A lease another worker renews is never taken.  It
does not balance leases between live workers; scale-out is the job of the KCL and Lambda
adapters.

Per shard it runs one reader task (polling or enhanced fan-out) feeding a bounded queue: a
slow pipeline fills the queue and the reader pauses.  Shards are discovered with ListShards
(periodically and when a reader reports ChildShards); a child starts only once the store says
all its parents are checkpointed at SHARD_END (see :mod:`consumers.kinesis.lineage`).  Each
shard resumes at its checkpoint.  Leases are renewed periodically; a shard whose lease is lost
is stopped and its unread batches are dropped, since the new owner will read them; taken
back later, it is read again from its checkpoint, under a new *hold*: each take of a shard's
lease is numbered, and every batch says the hold it was read under
(:attr:`~consumers.source.SourceBatch.hold`), so the pipeline starts the shard afresh even when
no refused checkpoint told it of the loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from consumers.checkpoint.base import CheckpointStore, Lease
from consumers.kinesis.batch import ShardBatch
from consumers.kinesis.budget import Clock, Sleep
from consumers.kinesis.config import ReaderConfig
from consumers.kinesis.efo import FanOutShardReader, ensure_consumer, stream_arn
from consumers.kinesis.lease_expiry import LeaseExpiry
from consumers.kinesis.lineage import ShardAssignment, plan_reads, resume_position
from consumers.kinesis.polling import PollingShardReader
from consumers.kinesis.positions import TRIM_HORIZON, StartKind, StartPosition
from consumers.kinesis.session import reader_session
from consumers.source import SourceBatch
from shardline import metrics_events as events
from shardline.clients import aiobotocore_client
from shardline.errormap import map_aws_errors
from shardline.errors import (
    CheckpointError,
    ClosedError,
    ConfigurationError,
    LeaseLostError,
    LeaseRowError,
    ShardlineError,
    ValidationError,
)
from shardline.metrics import MetricsObserver, guard_observer
from shardline.records import SHARD_END, KinesisPosition, Position
from shardline.shardmath import ShardInfo, list_shards
from shardline.tasks import stray_cancel

__all__ = ["KinesisSource"]

_T = TypeVar("_T")
_log = logging.getLogger(__name__)
_STREAM_NAME = re.compile(r"^[a-zA-Z0-9_.\-]{1,128}$")


@dataclass(eq=False)
class _Shard:
    """What the source knows about one shard it reads."""

    info: ShardInfo
    lease: Lease
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    task: asyncio.Task[None] | None = None
    ended: bool = False
    held_at: float = 0.0
    """When the store last confirmed the lease ours (taken, renewed or checkpointed)."""
    hold: int = 0
    """Which take of the shard's lease this is (0 for the first one in this source's life)."""
    delivered: bool = False
    """A batch of this hold was yielded: before that, every position of the shard the
    pipeline may checkpoint was read under an earlier hold."""
    end_written: bool = False
    """SHARD_END is checkpointed; the shard stays here until its lease is released."""


class KinesisSource:
    """Reads a Kinesis stream shard by shard, honouring lineage, leases and checkpoints.

    Args:
        stream_name: the stream to read.
        store: where leases and checkpoints live.
        owner: this worker's lease-owner name (unique per process).
        mode: ``"polling"`` (GetRecords, shared budget) or ``"efo"`` (enhanced fan-out).
        consumer_name: the fan-out consumer's name; required for ``"efo"``.
        start: where shards without a checkpoint start: TRIM_HORIZON, LATEST or AT_TIMESTAMP.
        client: an aiobotocore Kinesis client; without one, a client is built from ``session``
            (or a new aiobotocore session) honouring the standard AWS configuration.
        config: reader tuning (:class:`ReaderConfig`).
        observer: metrics; also receives ``shards_started``, ``shards_finished``, ``leases_lost``.

    Use ``async with`` (or call :meth:`close`) to give the leases up at the end: after
    :meth:`stop` they stay renewed until then, so the checkpoints written in between land.
    """

    def __init__(
        self,
        stream_name: str,
        *,
        store: CheckpointStore,
        owner: str,
        mode: Literal["polling", "efo"] = "polling",
        consumer_name: str | None = None,
        start: StartPosition = TRIM_HORIZON,
        client: Any = None,
        session: Any = None,
        config: ReaderConfig | None = None,
        observer: MetricsObserver | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not isinstance(stream_name, str) or not _STREAM_NAME.match(stream_name):
            raise ValidationError("stream name must be 1-128 characters of [a-zA-Z0-9_.-]")
        if not owner or not isinstance(owner, str):
            raise ValidationError("owner must be a non-empty string")
        if mode not in ("polling", "efo"):
            raise ConfigurationError("mode must be 'polling' or 'efo'")
        if mode == "efo" and not consumer_name:
            raise ConfigurationError("enhanced fan-out needs a consumer_name")
        if start.kind not in (StartKind.TRIM_HORIZON, StartKind.LATEST, StartKind.AT_TIMESTAMP):
            raise ConfigurationError(
                "a stream-wide start is TRIM_HORIZON, LATEST or AT_TIMESTAMP; "
                "sequence numbers are per shard (use a shard reader)"
            )
        self.stream_name = stream_name
        self._store = store
        self._owner = owner
        self._mode = mode
        self._consumer_name = consumer_name
        self._start = start
        self._client = client
        self._session = session
        self._config = config if config is not None else ReaderConfig()
        self._observer: MetricsObserver = guard_observer(observer)
        self._clock = clock
        self._sleep = sleep
        self._shards: dict[str, _Shard] = {}
        self._known: dict[str, ShardInfo] = {}
        self._lost: set[str] = set()
        """Shards whose lease this worker lost and has not taken back (checkpoints refused)."""
        self._losses = 0
        self._takes: dict[str, int] = {}
        """Per shard, how often this source took its lease: the next hold's number."""
        self._finished: set[str] = set()
        self._expiry = LeaseExpiry(owner, self._lease_expiry, clock)
        self._output: asyncio.Queue[tuple[_Shard, ShardBatch] | BaseException | None] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()
        """Set with ``_stopping``: ends the discovery's waits between rounds."""
        self._closing = asyncio.Event()
        """Set by :meth:`close`: ends the renewal's waits between rounds.  Renewals go on past
        :meth:`stop` until then, while the pipeline drains and writes its last checkpoint."""
        self._renewal: asyncio.Task[None] | None = None
        """The renewal task, once :meth:`batches` started it; after a stop, :meth:`close` ends it."""
        self._running = False
        self._delivering = False
        """:meth:`batches` still reads ``_output``: a failure put there is raised to its caller."""
        self._consumer_arn: str | None = None

    def __repr__(self) -> str:
        return (
            f"KinesisSource(stream={self.stream_name!r}, mode={self._mode!r}, owner={self._owner!r}, "
            f"shards={sorted(self._shards)})"
        )

    @property
    def shards(self) -> list[str]:
        """Shards being read now (including ended ones whose SHARD_END checkpoint or lease
        release is still to come)."""
        return sorted(self._shards)

    @property
    def partitions_lost(self) -> int:
        """Leases lost to other workers so far, each counted when this source learnt of it (a
        renewal or a checkpoint refused), pending records or not: what ``partitions_lost`` of
        :class:`~consumers.pipeline.PipelineStats` reports."""
        return self._losses

    async def __aenter__(self) -> KinesisSource:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- Source contract --------------------------------------------------------------------

    async def batches(self) -> AsyncIterator[SourceBatch]:
        """Yield batches of every readable shard until :meth:`stop`; each shard in order."""
        if self._running:
            raise ConfigurationError("batches() is already being iterated")
        if self._stopping:
            raise ClosedError("the source was stopped")
        self._running = True
        async with AsyncExitStack() as stack:
            session = self._session
            if session is None and self._client is None:
                session = reader_session()  # decodes what Kinesis answers itself (session.py)
            client = await stack.enter_async_context(
                aiobotocore_client("kinesis", session=session, client=self._client)
            )
            if self._mode == "efo":
                assert self._consumer_name is not None
                arn = await stream_arn(client, self.stream_name)
                self._consumer_arn = await ensure_consumer(
                    client,
                    arn,
                    self._consumer_name,
                    timeout=self._config.consumer_active_timeout,
                    clock=self._clock,
                    sleep=self._sleep,
                )
            discovery = asyncio.create_task(self._discover_forever(client), name="kinesis-discovery")
            self._renewal = asyncio.create_task(self._renew_forever(), name="kinesis-lease-renewal")
            background = [discovery, self._renewal]
            self._delivering = True
            try:
                while True:
                    item = await self._output.get()
                    if item is None:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    shard, batch = item
                    if self._shards.get(batch.shard_id) is not shard:
                        # lease lost meanwhile (and maybe taken back since, read again from
                        # its checkpoint): the holder that took it reads these records
                        continue
                    shard.slots.release()
                    shard.delivered = True
                    yield SourceBatch(
                        partition=batch.shard_id,
                        records=batch.records,
                        millis_behind_latest=batch.millis_behind_latest,
                        end_of_partition=batch.end_of_shard,
                        stream=self.stream_name,
                        hold=shard.hold,
                    )
            finally:
                self._delivering = False
                asked_to_stop = self._stopping  # not a cancel or a failure: those end at once
                self._halt()
                readers = [s.task for s in self._shards.values() if s.task is not None]
                for task in readers:
                    task.cancel()
                # asked to stop, the leases stay renewed until close(): the pipeline drains and
                # checkpoints in between, and an expired lease would refuse that checkpoint
                ending = [discovery] if asked_to_stop else background
                try:
                    await asyncio.gather(*readers, return_exceptions=True)
                    if asked_to_stop:
                        await self._let_lease_writes_finish(ending)
                finally:
                    for task in ending:
                        task.cancel()
                    await asyncio.gather(*ending, return_exceptions=True)
                    self._running = False

    async def checkpoint(self, partition: str, position: Position) -> bool:
        """Record that every record of shard ``partition`` up to ``position`` is processed."""
        if not isinstance(position, KinesisPosition) or position.shard_id != partition:
            raise ValidationError("a Kinesis checkpoint needs a KinesisPosition of that shard")
        await self._write_checkpoint(partition, position.sequence_number, position.sub_sequence_number)
        return True

    async def checkpoint_end(self, partition: str) -> None:
        """Record SHARD_END for a shard whose last batch was delivered, then give its lease up.

        Its children may start once SHARD_END is written.  Idempotent, so the pipeline's retry
        of a call that failed part-way finishes the job: SHARD_END written but the release
        failing (a transient store error) leaves the shard held, and the retry releases it
        without writing again; a call after the release is done does nothing.  Before, the
        shard was forgotten once SHARD_END was written, and the retry was refused for good
        as a shard this source does not read, which stopped the run.
        """
        shard = self._shards.get(partition)
        if shard is None and partition in self._finished and partition not in self._lost:
            return  # written and released by an earlier call
        if shard is not None and not shard.ended:
            raise CheckpointError(f"shard {partition!r} has not reached its end; refusing SHARD_END")
        if shard is None or not shard.end_written:
            await self._write_checkpoint(partition, SHARD_END, 0)  # refuses a shard not read
            shard = self._shards[partition]
            shard.end_written = True
            self._finished.add(partition)
            self._observer.on_event(events.SHARDS_FINISHED, 1.0, stream=self.stream_name, shard=partition)
            self._wake.set()  # its children may start
        async with shard.lock:
            if self._shards.get(partition) is shard:
                await self._store.release(shard.lease)  # a no-op once the lease is not ours
                del self._shards[partition]

    async def stop(self) -> None:
        """Stop reading; :meth:`batches` yields what was already read, then ends.

        The leases stay held (and renewed) until :meth:`close`.
        """
        if self._stopping:
            return
        self._halt()
        for shard in self._shards.values():
            if shard.task is not None:
                shard.task.cancel()
        self._output.put_nowait(None)

    async def close(self, timeout: float | None = None) -> None:
        """Stop, end the lease renewals, then give up the leases still held (checkpoints stay).

        Between :meth:`stop` and this call the leases are still renewed, so the checkpoints
        written after the stop (the pipeline's drain and last checkpoint) are not refused as
        lost leases, however long the drain takes.  ``timeout`` bounds the end of the
        renewals and the releases: the leases not released by then expire on their own.
        """
        await self.stop()
        self._closing.set()
        renewal = self._renewal
        try:
            async with asyncio.timeout(timeout):
                if renewal is not None:
                    try:
                        await self._let_lease_writes_finish([renewal])
                    finally:  # a renewal still unanswered holds its shard's lock
                        renewal.cancel()
                        await asyncio.gather(renewal, return_exceptions=True)
                for shard_id, shard in list(self._shards.items()):
                    async with shard.lock:
                        with contextlib.suppress(ShardlineError):
                            await self._store.release(shard.lease)
                    self._shards.pop(shard_id, None)
        except TimeoutError:
            _log.warning("releasing leases timed out; they expire on their own")

    # --- internals ----------------------------------------------------------------------------

    def _halt(self) -> None:
        self._stopping = True
        self._stopped.set()

    async def _let_lease_writes_finish(self, background: list[asyncio.Task[None]]) -> None:
        """After :meth:`stop` (the discovery) or :meth:`close` (the renewal), let the task end
        between two rounds.

        Cancelled during a renewal or a take, a lease write may be applied with its answer
        lost: the lease held in memory then no longer matches the table, the last checkpoint
        is refused as a lost lease and the release too, so the records since the previous
        checkpoint are read again and the shard waits for its lease to expire.  Each task
        stops at its next wait (``_stopped``, ``_closing``); a write that does not end within a lease's
        expiry is cancelled (by then another worker may take the lease anyway).  A cancelled
        iteration (the worker is being killed) or a failed one ends them at once, as before.
        """
        if background:
            await asyncio.wait(background, timeout=self._lease_expiry)

    async def _pause(self, seconds: float, *wakers: asyncio.Event) -> None:
        """Wait ``seconds`` on the source's own ``sleep``, less when stopped or woken.

        Timed on the source's ``sleep``, the clock the lease expiry is judged on: timed on the
        event loop's instead, an injected clock and the renewals would drift apart, and a
        test's clock could expire leases that are renewed in time.
        """
        await self._unless_stopped(self._sleep(seconds), *wakers)

    async def _write_checkpoint(self, partition: str, sequence_number: str, sub_sequence: int) -> None:
        """Write under the lease as held now, refusing what was read under an earlier hold.

        A lease lost and taken back since the position was read must not take it: the worker
        that held the lease meanwhile may have checkpointed further, and the new hold reads on
        from there.  Until a batch of the new hold is yielded (the pipeline starts the shard
        afresh on it, in the same step), any position asked for is the earlier hold's; the
        loss was counted when it was learnt, so refusing it counts nothing.
        """
        if partition in self._lost:
            raise LeaseLostError(f"lease on shard {partition!r} was lost")
        shard = self._shards.get(partition)
        if shard is None:
            raise CheckpointError(f"shard {partition!r} is not read by this source")
        if shard.hold and not shard.delivered:
            raise LeaseLostError(f"lease on shard {partition!r} was lost and taken back since")
        async with shard.lock:
            if self._shards.get(partition) is not shard:
                # lost while this checkpoint waited for the lock (the renewal that held it
                # learnt of the loss and counted it; maybe taken back since), or released
                raise LeaseLostError(f"lease on shard {partition!r} was lost")
            try:
                shard.lease = await self._store.checkpoint(shard.lease, sequence_number, sub_sequence)
            except LeaseLostError:
                self._lose(partition)
                raise
            shard.held_at = self._clock()

    def _lose(self, shard_id: str) -> None:
        shard = self._shards.pop(shard_id, None)
        self._lost.add(shard_id)
        self._losses += 1
        self._observer.on_event(events.LEASES_LOST, 1.0, stream=self.stream_name, shard=shard_id)
        _log.warning("lease lost on %s/%s; stopping that shard", self.stream_name, shard_id)
        if shard is not None and shard.task is not None:
            shard.task.cancel()

    async def _discover_forever(self, client: Any) -> None:
        try:
            while not self._stopping:
                try:
                    await self._discover(client)
                except ShardlineError as exc:
                    if not exc.retriable:
                        raise
                    _log.warning("shard discovery failed (%s); retrying", type(exc).__name__)
                self._wake.clear()
                await self._until_next_listing()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer of batches() (stray_cancel)
            self._output.put_nowait(stray_cancel(exc, "shard discovery"))

    async def _until_next_listing(self) -> None:
        """Wait ``shard_discovery_interval``, or less when woken (a shard ended, a reader
        reported children) or stopped."""
        await self._pause(self._config.shard_discovery_interval, self._wake)

    @property
    def _lease_expiry(self) -> float:
        """Seconds without a renewal after which another worker may count a lease abandoned:
        three renewal rounds (the KCL's failover time plays this part for its workers)."""
        return 3 * self._config.lease_renew_interval

    async def _discover(self, client: Any) -> None:
        listed = await self._unless_stopped(self._list_shards(client))
        if listed is None:
            return
        for info in listed:
            self._known[info.shard_id] = info
        leases = await self._unless_stopped(self._store.list())
        if leases is None:
            return
        listed_leases = {lease.shard_id: lease for lease in leases}
        exclude = set(self._shards) | self._finished | self._expiry.held_elsewhere(leases)
        for plan in plan_reads(self._known.values(), leases, self._start, exclude=exclude):
            if self._stopping:
                return
            # a shard without a lease yet gets one nobody holds (counter 0), created below
            judged = listed_leases.get(plan.shard_id) or Lease(plan.shard_id, None, 0, None)
            await self._start_shard(client, plan, judged)

    async def _list_shards(self, client: Any) -> list[ShardInfo]:
        with map_aws_errors("kinesis"):
            return await list_shards(client, stream_name=self.stream_name)

    async def _unless_stopped(self, work: Awaitable[_T], *wakers: asyncio.Event) -> _T | None:
        """``work``'s result, or ``None`` once the source is stopped (or a waker set) first;
        ``work`` is then cancelled.

        For waits and the discovery's reads only (a listing, the lease table's scan), never a
        lease write: a stop waits for the lease writes in flight, and a read hanging on an
        endpoint that does not answer would hold the stop, and the last checkpoint after it,
        for a lease's expiry.
        """
        return await self._first_of(work, self._stopped, *wakers)

    @staticmethod
    async def _first_of(work: Awaitable[_T], *events: asyncio.Event) -> _T | None:
        """``work``'s result, or ``None`` once one of ``events`` is set first (``work`` is
        then cancelled)."""
        doing = asyncio.ensure_future(work)
        waits = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait({doing, *waits}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (doing, *waits):
                future.cancel()
            await asyncio.gather(doing, *waits, return_exceptions=True)
        return None if doing.cancelled() else doing.result()

    async def _start_shard(self, client: Any, plan: ShardAssignment, judged: Lease) -> None:
        """Take ``plan``'s lease, only as it was when judged free or abandoned, and read it.

        The take is conditional on ``judged``'s owner and counter: a holder that renewed
        between the listing and the take keeps its lease.
        """
        info = plan.shard
        # a new lease records where the shard starts (the KCL's initial-position sentinel)
        initial = plan.start.kind.value if not plan.start.is_sequence_based else StartKind.TRIM_HORIZON.value
        await self._store.create_if_absent(info.shard_id, info.parents, initial_position=initial)
        try:
            lease = await self._store.acquire(info.shard_id, self._owner, expected=judged)
        except LeaseLostError:  # renewed or taken since the listing: judged again at the next one
            return
        except LeaseRowError as exc:  # this shard's row only: the others are read
            _log.warning("%s; %s/%s is not read until the row is fixed", exc, self.stream_name, info.shard_id)
            return
        if lease.is_shard_end:  # its holder finished it after the listing this plan came from
            self._finished.add(info.shard_id)
            await self._store.release(lease)
            self._wake.set()  # its children may start
            return
        # The lease just taken, not the listing the plan was made from, says where to resume:
        # its holder may have checkpointed further meanwhile, and resuming from the listing
        # re-read those records and then moved the checkpoint back over them.
        start = plan.start if lease.checkpoint is None else resume_position(lease, plan.start)
        hold = self._takes.get(info.shard_id, 0)
        self._takes[info.shard_id] = hold + 1
        shard = _Shard(
            info=info,
            lease=lease,
            slots=asyncio.Semaphore(self._config.max_pending_batches),
            held_at=self._clock(),
            hold=hold,
        )
        self._shards[info.shard_id] = shard
        self._lost.discard(info.shard_id)
        if self._stopping:
            return  # taken while stopping: held only to be released by close(), not read
        shard.task = asyncio.create_task(self._read_shard(client, shard, start), name=info.shard_id)
        self._observer.on_event(events.SHARDS_STARTED, 1.0, stream=self.stream_name, shard=info.shard_id)
        _log.info("reading %s/%s from %s", self.stream_name, info.shard_id, start)

    def _reader(self, client: Any, shard: _Shard, start: StartPosition) -> AsyncIterator[ShardBatch]:
        common: dict[str, Any] = {
            "shard": shard.info,
            "config": self._config,
            "observer": self._observer,
            "clock": self._clock,
            "sleep": self._sleep,
        }
        if self._mode == "efo":
            assert self._consumer_arn is not None
            return aiter(
                FanOutShardReader(
                    client, self._consumer_arn, self.stream_name, shard.info.shard_id, start, **common
                )
            )
        return aiter(PollingShardReader(client, self.stream_name, shard.info.shard_id, start, **common))

    async def _read_shard(self, client: Any, shard: _Shard, start: StartPosition) -> None:
        try:
            async for batch in self._reader(client, shard, start):
                await shard.slots.acquire()  # back-pressure: at most max_pending_batches queued
                if self._shards.get(shard.info.shard_id) is not shard:
                    return
                if batch.child_shards:
                    for child in batch.child_shards:
                        self._known.setdefault(child.shard_id, child)
                if batch.end_of_shard:
                    shard.ended = True
                self._output.put_nowait((shard, batch))
                if batch.end_of_shard:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer of batches() (stray_cancel)
            self._output.put_nowait(stray_cancel(exc, f"the reader of {shard.info.shard_id}"))

    async def _renew_forever(self) -> None:
        """Renew the leases every ``lease_renew_interval`` until :meth:`close` (not :meth:`stop`).

        A failure ends :meth:`batches` with it; one after the iteration ended (the pipeline
        draining) is logged: the checkpoints still to come are fenced by the store anyway.
        """
        try:
            while not self._closing.is_set():
                await self._first_of(self._sleep(self._config.lease_renew_interval), self._closing)
                if self._closing.is_set():
                    return
                await self._renew_all()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer of batches() (stray_cancel)
            failure = stray_cancel(exc, "lease renewal")
            if self._delivering:
                self._output.put_nowait(failure)
            else:
                _log.error("lease renewal failed after the source stopped (%s)", type(failure).__name__)

    async def _renew_all(self) -> None:
        """One renewal round: every shard's lease renewed at once, each within its expiry.

        A lost lease stops its shard; a store error is retried next round.  A lease the store
        has not confirmed for :attr:`_lease_expiry` ends the source with a
        :class:`CheckpointError` (so :meth:`Pipeline.run` raises it, as documented): by then
        another worker may count the lease abandoned and take it, and the process, restarted
        by its supervisor, takes its shards again from their checkpoints.

        The renewals run side by side, as the KCL's renewer runs them: one after the other, a
        slow answer (a throttled table, retries, a connection waiting for its read timeout)
        delayed every later shard's renewal by as much, so their counters stood still past
        the expiry while this worker read on, and other workers took them meanwhile.  For the
        same reason a renewal still unanswered when its lease's expiry passes ends the source
        at that moment, not whenever the answer comes.  (A lease already past its expiry when
        the round begins, the worker having been paused, is renewed without that bound: the
        conditional renewal itself says whether another worker took it.)
        """
        renewals = [
            asyncio.ensure_future(self._renew_within_expiry(shard_id, shard))
            for shard_id, shard in list(self._shards.items())
        ]
        # one failing lets the others finish (each is bounded): cancelled with its write
        # applied, a renewal left the lease held in memory behind the table's, and the last
        # checkpoint of a shard this worker still held was refused as a lost lease
        outcomes = await asyncio.gather(*renewals, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _renew_within_expiry(self, shard_id: str, shard: _Shard) -> None:
        """Renew one lease; raise :class:`CheckpointError` once its expiry passes unconfirmed."""
        left = shard.held_at + self._lease_expiry - self._clock()
        if left <= 0:
            await self._renew(shard_id, shard)
            return
        renewing = asyncio.ensure_future(self._renew(shard_id, shard))
        expiring = asyncio.ensure_future(self._sleep(left))
        try:
            await asyncio.wait({renewing, expiring}, return_when=asyncio.FIRST_COMPLETED)
            answered = renewing.done()  # both done at once: the answer counts
        finally:
            for future in (renewing, expiring):
                future.cancel()  # a no-op on the one that is done
            await asyncio.gather(renewing, expiring, return_exceptions=True)
        if answered:
            renewing.result()  # its failure, if any, is raised as is
            return
        raise CheckpointError(
            f"the lease of {shard_id!r} was not confirmed for {self._clock() - shard.held_at:.0f} s "
            "(its renewal still unanswered): another worker may take it, so this one stops"
        )

    async def _renew(self, shard_id: str, shard: _Shard) -> None:
        if self._closing.is_set():
            return  # the leases are released next; one renewed now would only delay it
        async with shard.lock:
            if self._shards.get(shard_id) is not shard:
                return
            try:
                shard.lease = await self._store.renew(shard.lease)
            except LeaseLostError:
                self._lose(shard_id)
                return
            except ShardlineError as exc:
                unrenewed = self._clock() - shard.held_at
                if unrenewed < self._lease_expiry:
                    _log.warning("lease renewal of %s failed (%s)", shard_id, type(exc).__name__)
                    return
                raise CheckpointError(
                    f"the lease of {shard_id!r} was not renewed for {unrenewed:.0f} s "
                    f"({type(exc).__name__}): another worker may take it, so this one stops"
                ) from exc
            shard.held_at = self._clock()
