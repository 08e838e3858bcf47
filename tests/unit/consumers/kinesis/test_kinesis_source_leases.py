"""KinesisSource and its leases when other workers, bad rows or a failing store get involved.

Each test drives a real :class:`KinesisSource` against the in-memory Kinesis double and a
real checkpoint store (memory or SQLite), with the store wrapped where a race or a failure
has to be injected.  Waits are bounded (:func:`until`), so a source that never gets there
fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from consumers.checkpoint.base import Lease
from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.checkpoint.sqlite import SQLiteCheckpointStore
from consumers.kinesis import KinesisSource, ReaderConfig
from consumers.kinesis.lease_expiry import LeaseExpiry
from consumers.source import SourceBatch
from shardline.errors import CheckpointError, LeaseLostError, TransientServiceError
from shardline.records import SHARD_END
from tests.unit.consumers.kinesis.test_kinesis_polling_unit import FakeKinesis

BOUND = 5.0
FAST = ReaderConfig(lease_renew_interval=0.05, shard_discovery_interval=0.05)


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(BOUND):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


class TwoShards(FakeKinesis):
    """The double's records, listed as two shards (each reads the same records)."""

    async def list_shards(self, **_: Any) -> dict[str, Any]:
        half = 2**127
        return {
            "Shards": [
                {
                    "ShardId": shard_id,
                    "HashKeyRange": {"StartingHashKey": str(low), "EndingHashKey": str(high)},
                    "SequenceNumberRange": {"StartingSequenceNumber": "1000"},
                }
                for shard_id, low, high in (("shard-0", 0, half - 1), ("shard-1", half, 2**128 - 1))
            ]
        }


@contextlib.asynccontextmanager
async def reading(source: KinesisSource) -> AsyncIterator[asyncio.Queue[SourceBatch]]:
    """Iterate the source in a task of its own; its batches land in the queue yielded."""
    received: asyncio.Queue[SourceBatch] = asyncio.Queue()

    async def pump() -> None:
        async for batch in source.batches():
            await received.put(batch)

    task = asyncio.create_task(pump())
    try:
        yield received
    finally:
        await source.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


class MovesOnBeforeTheTake(MemoryCheckpointStore):
    """Between the source's listing and its take, the holder ``other`` checkpoints further."""

    def __init__(self, other: str, to: str) -> None:
        super().__init__()
        self.other = other
        self.to = to

    async def acquire(self, shard_id: str, owner: str, *, expected: Lease | None = None) -> Lease:
        held = await self.get(shard_id)
        if owner != self.other and held is not None and held.owner == self.other:
            await self.checkpoint(held, self.to)
        return await super().acquire(shard_id, owner, expected=expected)


async def _held_by(store: MemoryCheckpointStore, owner: str, checkpoint: str) -> None:
    await store.create_if_absent("shard-0")
    lease = await store.acquire("shard-0", owner)
    await store.checkpoint(lease, checkpoint)


async def test_a_shard_resumes_where_the_lease_it_took_says_not_where_the_listing_did() -> None:
    store = MovesOnBeforeTheTake("B", "1050")
    await _held_by(store, "B", "1005")
    source = KinesisSource("s", store=store, owner="A", client=FakeKinesis([("k", b"x")] * 100), config=FAST)
    async with reading(source) as received:
        first = await asyncio.wait_for(received.get(), BOUND)
    # before: read from 1006 (the listing), then checkpointed back over B's 1050
    assert first.records[0].position.sequence_number == "1051"


async def test_a_shard_finished_by_its_holder_after_the_listing_is_not_read_again() -> None:
    store = MovesOnBeforeTheTake("B", SHARD_END)
    await _held_by(store, "B", "1005")
    client = FakeKinesis([("k", b"x")] * 100)
    source = KinesisSource("s", store=store, owner="A", client=client, config=FAST)
    async with reading(source):
        await until(lambda: "shard-0" in source._finished, "the finished shard is recognised")
    lease = await store.get("shard-0")
    assert lease is not None and lease.is_shard_end  # before: read again, then checkpointed back
    assert client.get_records_calls == 0


# "1" * 129: digits, but more than any sequence number has; the row was read as a lease, and
# planning the shard's start from it raised a ValidationError that ended the whole source
@pytest.mark.parametrize("checkpoint", ["garbage", "1" * 129])
async def test_one_malformed_lease_row_leaves_the_other_shards_read(tmp_path: Path, checkpoint: str) -> None:
    path = tmp_path / "leases.db"
    store = SQLiteCheckpointStore(str(path))
    for shard_id in ("shard-0", "shard-1"):
        await store.create_if_absent(shard_id)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(
            "UPDATE shardline_leases SET checkpoint = ? WHERE lease_key = 'shard-1'", (checkpoint,)
        )
    connection.close()
    assert [lease.shard_id for lease in await store.list()] == ["shard-0"]  # logged and left out
    source = KinesisSource("s", store=store, owner="A", client=TwoShards([("k", b"x")] * 20), config=FAST)
    async with reading(source) as received:
        batch = await asyncio.wait_for(received.get(), BOUND)  # before: the source ended, raising
        assert batch.partition == "shard-0"
        assert source.shards == ["shard-0"]
    await store.close()


class RenewalsFail(MemoryCheckpointStore):
    """A store that stops answering renewals (unreachable, throttled) when told to."""

    failing = False

    async def renew(self, lease: Lease) -> Lease:
        if self.failing:
            raise TransientServiceError("store unreachable")
        return await super().renew(lease)


async def test_a_lease_that_cannot_be_renewed_for_three_rounds_ends_the_source() -> None:
    store = RenewalsFail()
    source = KinesisSource("s", store=store, owner="A", client=FakeKinesis([("k", b"x")] * 20), config=FAST)
    batches = source.batches()
    first = await asyncio.wait_for(anext(batches), BOUND)
    assert first.partition == "shard-0"
    store.failing = True
    # before: renewal warnings for ever while the shard was read, long after another worker
    # may have taken the lease; now the source (so Pipeline.run) raises, naming the shard
    with pytest.raises(CheckpointError, match="not renewed") as raised:
        async with asyncio.timeout(BOUND):
            async for _ in batches:
                pass
    assert isinstance(raised.value.__cause__, TransientServiceError)
    await source.close()


# --- a lost shard comes back once its new holder stops renewing -------------------------------


class CountsListings(MemoryCheckpointStore):
    """Counts the source's listings of the lease table, so a test can wait for the next one."""

    listings = 0

    async def list(self) -> list[Lease]:
        leases = await super().list()
        self.listings += 1
        return leases


async def next_listings(store: CountsListings, count: int = 2) -> None:
    """Until the source listed the table ``count`` more times (the last one saw every change)."""
    target = store.listings + count
    await until(lambda: store.listings >= target, "the source lists the lease table")


async def test_a_lost_shard_is_taken_back_once_its_holder_stops_renewing_never_before() -> None:
    clock = [0.0]  # the expiry is judged on this clock only; the loops run on FAST intervals
    store = CountsListings()
    client = FakeKinesis([("k", b"x")] * 20, limit=5)
    source = KinesisSource("s", store=store, owner="A", client=client, config=FAST, clock=lambda: clock[0])
    expiry = 3 * FAST.lease_renew_interval
    async with reading(source) as received:
        first = await asyncio.wait_for(received.get(), BOUND)
        assert first.partition == "shard-0"
        # worker B takes the shard (a KCL balancer's steal, or A's renewals failed a while)
        taken = await store.acquire("shard-0", "B")
        await until(lambda: source.shards == [], "A loses the shard at its next renewal")
        taken = await store.checkpoint(taken, "1007")
        with pytest.raises(LeaseLostError):
            await source.checkpoint("shard-0", first.records[-1].position)
        # B renews within the expiry, however long it holds the shard: A never takes it
        for _ in range(5):
            clock[0] += 0.6 * expiry
            taken = await store.renew(taken)
            await next_listings(store)
            assert source.shards == [] and (await store.get("shard-0")).owner == "B"  # type: ignore[union-attr]
        # B dies without releasing: its counter stands still for the expiry on A's clock
        await next_listings(store)
        clock[0] += expiry
        await until(lambda: source.shards == ["shard-0"], "A takes the abandoned lease back")
        while True:  # what A read under its first hold was dropped; the new hold starts after B's checkpoint
            batch = await asyncio.wait_for(received.get(), BOUND)
            if batch.records[0].position.sequence_number == "1008":
                break
        await source.checkpoint("shard-0", batch.records[-1].position)
    lease = await store.get("shard-0")
    assert lease is not None and lease.owner == "A"
    assert lease.checkpoint == batch.records[-1].position.sequence_number


def test_lease_expiry_counts_only_a_counter_that_stood_still() -> None:
    clock = [0.0]
    expiry = LeaseExpiry("A", 30.0, lambda: clock[0])

    def lease(owner: str | None, counter: int) -> Lease:
        return Lease("shard-0", owner, counter, None)

    assert expiry.held_elsewhere([lease("B", 1)]) == {"shard-0"}  # first seen: held
    clock[0] = 29.0
    assert expiry.held_elsewhere([lease("B", 1)]) == {"shard-0"}
    assert expiry.held_elsewhere([lease("B", 2)]) == {"shard-0"}  # renewed: timed afresh
    clock[0] = 58.0
    assert expiry.held_elsewhere([lease("B", 2)]) == {"shard-0"}
    clock[0] = 59.0
    assert expiry.held_elsewhere([lease("B", 2)]) == set()  # 30 s unchanged: abandoned
    assert expiry.held_elsewhere([lease("C", 2)]) == {"shard-0"}  # another owner: timed afresh
    assert expiry.held_elsewhere([lease(None, 3), lease("A", 4)]) == set()  # free, or ours


class RenewsAtEveryTake(CountsListings):
    """The holder ``other`` renews its lease between each listing and each take by another."""

    def __init__(self, other: str) -> None:
        super().__init__()
        self.other = other
        self.takes_tried = 0

    async def acquire(self, shard_id: str, owner: str, *, expected: Lease | None = None) -> Lease:
        held = await self.get(shard_id)
        if owner != self.other and held is not None and held.owner == self.other:
            self.takes_tried += 1
            await self.renew(held)
        return await super().acquire(shard_id, owner, expected=expected)


async def test_a_lease_renewed_between_the_listing_and_the_take_stays_with_its_holder() -> None:
    clock = [0.0]
    store = RenewsAtEveryTake("B")
    await store.create_if_absent("shard-0")
    await store.acquire("shard-0", "B")
    client = FakeKinesis([("k", b"x")] * 5)
    source = KinesisSource("s", store=store, owner="A", client=client, config=FAST, clock=lambda: clock[0])
    async with reading(source):
        await next_listings(store)
        clock[0] += 3 * FAST.lease_renew_interval  # A's listing now judges B's lease abandoned
        await until(lambda: store.takes_tried >= 1, "A tries to take the lease it judged abandoned")
        await next_listings(store)
        # before: the take was conditional on the counter acquire read itself, after B's renewal
        assert source.shards == []
    lease = await store.get("shard-0")
    assert lease is not None and lease.owner == "B"


async def test_renewals_and_listings_are_timed_on_the_sleep_the_source_was_given() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # time passes at once; the lease loops run on it
        slept.append(seconds)
        await asyncio.sleep(0)

    config = ReaderConfig(lease_renew_interval=7.0, shard_discovery_interval=11.0)
    source = KinesisSource(
        "s", store=MemoryCheckpointStore(), owner="A", client=FakeKinesis([]), config=config, sleep=sleep
    )
    async with reading(source):
        # before: both waited on the event loop's clock, so with an injected clock the expiry
        # (judged on it) and the renewals (timed apart from it) drifted apart
        await until(lambda: {7.0, 11.0} <= set(slept), "renewal and discovery sleep on the given sleep")


async def test_a_shard_taken_back_is_read_under_a_new_hold_that_refuses_the_old_holds_positions() -> None:
    clock = [0.0]
    store = CountsListings()
    client = FakeKinesis([("k", b"x")] * 20, limit=5)
    source = KinesisSource("s", store=store, owner="A", client=client, config=FAST, clock=lambda: clock[0])
    batches = source.batches()  # iterated by hand: nothing of the new hold is yielded unasked
    try:
        first = await asyncio.wait_for(anext(batches), BOUND)
        assert first.hold == 0
        taken = await store.acquire("shard-0", "B")
        await until(lambda: source.shards == [], "A loses the shard at its next renewal")
        taken = await store.checkpoint(taken, "1012")
        await next_listings(store)
        clock[0] += 3 * FAST.lease_renew_interval  # B died without releasing
        await until(lambda: source.shards == ["shard-0"], "A takes the abandoned lease back")
        # no checkpoint of A's was refused between the loss and the take-back, so a pipeline
        # may still ask for a position of the first hold; before, it was written under the new
        # lease, moving B's checkpoint back from 1012 to 1004
        with pytest.raises(LeaseLostError):
            await source.checkpoint("shard-0", first.records[-1].position)
        lease = await store.get("shard-0")
        assert lease is not None and lease.owner == "A" and lease.checkpoint == "1012"
        while True:  # the first hold's queued batches are dropped; the new hold's say so
            batch = await asyncio.wait_for(anext(batches), BOUND)
            if batch.hold == 1:
                break
        assert batch.records[0].position.sequence_number == "1013"
        await source.checkpoint("shard-0", batch.records[-1].position)
    finally:
        await source.stop()
        await batches.aclose()
    lease = await store.get("shard-0")
    assert lease is not None and lease.checkpoint == batch.records[-1].position.sequence_number


class AnswersLate(MemoryCheckpointStore):
    """Once ``slow``, a renewal is applied to the table at once and answered only when
    ``answer`` is set: a write whose response is still on the way."""

    def __init__(self) -> None:
        super().__init__()
        self.slow = False
        self.in_flight = asyncio.Event()
        self.answer = asyncio.Event()

    async def renew(self, lease: Lease) -> Lease:
        renewed = await super().renew(lease)
        if self.slow:
            self.in_flight.set()
            await self.answer.wait()
        return renewed


async def test_stopping_during_a_renewal_lets_it_finish_so_the_last_checkpoint_and_the_release_land() -> None:
    store = AnswersLate()
    source = KinesisSource("s", store=store, owner="A", client=FakeKinesis([("k", b"x")] * 5), config=FAST)
    batches = source.batches()
    try:
        batch = await asyncio.wait_for(anext(batches), BOUND)
        store.slow = True
        await asyncio.wait_for(store.in_flight.wait(), BOUND)
        await source.stop()
        ending = asyncio.ensure_future(anext(batches, None))
        await asyncio.sleep(0)
        store.answer.set()  # the answer arrives after the stop
        await asyncio.wait_for(ending, BOUND)
        # before: the renewal was cancelled with its write applied, the lease held in memory
        # fell one counter behind the table, and this checkpoint was refused as a lost lease
        await source.checkpoint("shard-0", batch.records[-1].position)
    finally:
        await batches.aclose()
    await asyncio.wait_for(source.close(), BOUND)
    lease = await store.get("shard-0")
    assert lease is not None
    assert (lease.owner, lease.checkpoint) == (None, batch.records[-1].position.sequence_number)
    assert source.partitions_lost == 0


class ListingHangs(FakeKinesis):
    """Lists one shard once; every later listing waits for an answer that never comes."""

    def __init__(self) -> None:
        super().__init__([("k", b"x")] * 5)
        self.listings = 0
        self.hanging = asyncio.Event()

    async def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        self.listings += 1
        if self.listings > 1:
            self.hanging.set()
            await asyncio.Event().wait()
        return await super().list_shards(**kwargs)


async def test_a_listing_that_never_answers_does_not_hold_the_stop() -> None:
    client = ListingHangs()
    # renewals 10 s apart: a stop waiting for the hung listing would wait a 30 s lease expiry
    config = ReaderConfig(lease_renew_interval=10.0, shard_discovery_interval=0.01)
    store = MemoryCheckpointStore()
    source = KinesisSource("s", store=store, owner="A", client=client, config=config)
    batches = source.batches()
    try:
        batch = await asyncio.wait_for(anext(batches), BOUND)
        await asyncio.wait_for(client.hanging.wait(), BOUND)
        await source.stop()

        async def to_the_end() -> None:
            async for _ in batches:
                pass

        # before: the stop waited for the discovery stuck in its listing, a lease expiry
        await asyncio.wait_for(to_the_end(), BOUND)
        await asyncio.wait_for(source.checkpoint("shard-0", batch.records[-1].position), BOUND)
    finally:
        await asyncio.wait_for(batches.aclose(), BOUND)
    await asyncio.wait_for(source.close(), BOUND)
    lease = await store.get("shard-0")
    assert lease is not None and (lease.owner, lease.checkpoint) == (
        None,
        batch.records[-1].position.sequence_number,
    )
