"""One contract every checkpoint store keeps: memory, SQLite and DynamoDB (over moto's wire).

The interesting promises are the conditional ones: a worker that lost its lease can no
longer move the checkpoint (leaseCounter fencing), and of several concurrent takers exactly
one ends up holding a usable lease.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from consumers.checkpoint.base import SHARD_END, CheckpointStore, Lease
from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.checkpoint.sqlite import SQLiteCheckpointStore
from shardline.errors import CheckpointError, LeaseLostError, ValidationError

STORES = [
    "memory",
    "sqlite",
    pytest.param("dynamodb", marks=pytest.mark.integration),
]


async def _open(kind: str, request: pytest.FixtureRequest, tmp_path: Path, namespace: str) -> CheckpointStore:
    if kind == "memory":
        return MemoryCheckpointStore(namespace=namespace)
    if kind == "sqlite":
        return SQLiteCheckpointStore(tmp_path / "checkpoints.db", namespace=namespace)
    from consumers.checkpoint.dynamodb import DynamoDBCheckpointStore

    endpoint: str = request.getfixturevalue("moto_endpoint")
    table = f"leases-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")
    return DynamoDBCheckpointStore(table, namespace=namespace, endpoint_url=endpoint, create_table=True)


@pytest.fixture(params=STORES)
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A factory: ``await open_store(namespace)`` -> a store sharing this test's backing storage."""
    opened: list[CheckpointStore] = []
    kind: str = request.param

    async def factory(namespace: str = "default") -> CheckpointStore:
        store = await _open(kind, request, tmp_path, namespace)
        opened.append(store)
        return store

    factory.kind = kind  # type: ignore[attr-defined]
    yield factory
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_store: Any) -> CheckpointStore:
    result: CheckpointStore = await open_store()
    return result


async def test_missing_lease_is_none_and_list_is_empty(store: CheckpointStore) -> None:
    assert await store.get("shardId-000000000000") is None
    assert await store.list() == []


async def test_create_if_absent_creates_once_and_keeps_progress(store: CheckpointStore) -> None:
    await store.create_if_absent("shardId-000000000002", ["shardId-000000000001", "shardId-000000000000"])
    lease = await store.get("shardId-000000000002")
    assert lease is not None
    # a store shared with the KCL also records the start sentinel; the rest is the same everywhere
    assert lease.initial_position in (None, "TRIM_HORIZON")
    assert replace(lease, initial_position=None) == Lease(
        "shardId-000000000002", None, 0, None, 0, ("shardId-000000000000", "shardId-000000000001")
    )
    taken = await store.acquire("shardId-000000000002", "worker-a")
    await store.checkpoint(taken, "49590338271490256608559692538361571095921575989136588898", 3)
    await store.create_if_absent("shardId-000000000002")
    again = await store.get("shardId-000000000002")
    assert again is not None
    assert again.checkpoint == "49590338271490256608559692538361571095921575989136588898"
    assert again.sub_sequence_number == 3
    assert again.owner == "worker-a"


async def test_list_is_sorted_by_shard(store: CheckpointStore) -> None:
    for shard in ("shardId-000000000003", "shardId-000000000001", "shardId-000000000002"):
        await store.create_if_absent(shard)
    assert [lease.shard_id for lease in await store.list()] == [
        "shardId-000000000001",
        "shardId-000000000002",
        "shardId-000000000003",
    ]


async def test_acquire_sets_owner_and_bumps_counter(store: CheckpointStore) -> None:
    await store.create_if_absent("s-1")
    first = await store.acquire("s-1", "worker-a")
    assert (first.owner, first.counter) == ("worker-a", 1)
    second = await store.acquire("s-1", "worker-b")
    assert (second.owner, second.counter) == ("worker-b", 2)
    assert await store.get("s-1") == second


async def test_acquire_takes_only_the_lease_as_it_was_judged(store: CheckpointStore) -> None:
    """A holder renewing between another worker's listing and its take keeps the lease."""
    await store.create_if_absent("s-1")
    held = await store.acquire("s-1", "worker-b")
    judged = await store.get("s-1")  # worker-a's listing: judged abandoned
    assert judged is not None
    held = await store.renew(held)  # worker-b is alive after all
    with pytest.raises(LeaseLostError):
        await store.acquire("s-1", "worker-a", expected=judged)
    assert await store.get("s-1") == held
    judged = await store.get("s-1")  # unchanged since this listing: taken
    taken = await store.acquire("s-1", "worker-a", expected=judged)
    assert (taken.owner, taken.counter) == ("worker-a", held.counter + 1)
    with pytest.raises(LeaseLostError):  # a lease listed as nobody's, taken meanwhile
        await store.acquire("s-1", "worker-c", expected=replace(taken, owner=None))


async def test_acquire_of_unknown_shard_is_a_checkpoint_error(store: CheckpointStore) -> None:
    with pytest.raises(CheckpointError):
        await store.acquire("never-created", "worker-a")


async def test_renew_bumps_counter_while_held(store: CheckpointStore) -> None:
    await store.create_if_absent("s-1")
    lease = await store.acquire("s-1", "worker-a")
    renewed = await store.renew(lease)
    assert renewed.counter == lease.counter + 1
    assert renewed.owner == "worker-a"
    with pytest.raises(LeaseLostError):
        await store.renew(lease)  # the old copy is stale now


async def test_checkpoint_round_trip_and_shard_end(store: CheckpointStore) -> None:
    await store.create_if_absent("s-1")
    lease = await store.acquire("s-1", "worker-a")
    lease = await store.checkpoint(lease, "100", 0)
    assert lease.checkpoint == "100"
    lease = await store.checkpoint(lease, "200", 7)
    assert (lease.checkpoint, lease.sub_sequence_number) == ("200", 7)
    lease = await store.checkpoint(lease, SHARD_END)
    stored = await store.get("s-1")
    assert stored is not None
    assert stored.checkpoint == SHARD_END
    assert stored.is_shard_end


async def test_stale_worker_checkpoint_is_fenced_out(store: CheckpointStore) -> None:
    """RELIABILITY row 9: a paused worker wakes up after another took its lease."""
    await store.create_if_absent("s-1")
    stale = await store.acquire("s-1", "worker-a")
    stale = await store.checkpoint(stale, "100")
    fresh = await store.acquire("s-1", "worker-b")
    await store.checkpoint(fresh, "150")
    with pytest.raises(LeaseLostError):
        await store.checkpoint(stale, "120")
    with pytest.raises(LeaseLostError):
        await store.renew(stale)
    stored = await store.get("s-1")
    assert stored is not None
    assert (stored.owner, stored.checkpoint) == ("worker-b", "150")


async def test_checkpoint_is_fenced_on_the_owner_and_on_the_counter_each(store: CheckpointStore) -> None:
    """A copy matching in only one of owner and counter moves nothing (RELIABILITY row 9)."""
    await store.create_if_absent("s-1")
    stale = await store.acquire("s-1", "worker-a")
    held = await store.renew(stale)
    with pytest.raises(LeaseLostError):  # the owner's own copy from before its renewal
        await store.checkpoint(stale, "10")
    with pytest.raises(LeaseLostError):  # the current counter under another owner's name
        await store.checkpoint(replace(held, owner="worker-b"), "10")
    stored = await store.get("s-1")
    assert stored is not None and (stored.owner, stored.checkpoint) == ("worker-a", None)
    await store.checkpoint(held, "10")


async def test_same_owner_reacquiring_fences_its_own_older_copy(store: CheckpointStore) -> None:
    await store.create_if_absent("s-1")
    old = await store.acquire("s-1", "worker-a")
    await store.acquire("s-1", "worker-a")
    with pytest.raises(LeaseLostError):
        await store.checkpoint(old, "5")


async def test_release_clears_owner_only_while_held(store: CheckpointStore) -> None:
    await store.create_if_absent("s-1")
    lease = await store.acquire("s-1", "worker-a")
    lease = await store.checkpoint(lease, "42")
    await store.release(lease)
    released = await store.get("s-1")
    assert released is not None
    assert released.owner is None
    assert released.checkpoint == "42"
    with pytest.raises(LeaseLostError):
        await store.checkpoint(lease, "43")
    taken = await store.acquire("s-1", "worker-b")
    await store.release(lease)  # stale release must not free the new owner's lease
    held = await store.get("s-1")
    assert held is not None
    assert (held.owner, held.counter) == ("worker-b", taken.counter)


async def test_concurrent_acquires_leave_exactly_one_usable_lease(store: CheckpointStore) -> None:
    await store.create_if_absent("s-1")
    workers = [f"worker-{index}" for index in range(6)]
    results = await asyncio.gather(*(store.acquire("s-1", w) for w in workers), return_exceptions=True)
    for result in results:
        assert isinstance(result, Lease | LeaseLostError), repr(result)
    winners = [result for result in results if isinstance(result, Lease)]
    assert winners, "at least one taker must win"
    usable = 0
    for lease in winners:
        try:
            await store.checkpoint(lease, "10")
            usable += 1
        except LeaseLostError:
            pass
    assert usable == 1


async def test_namespaces_are_isolated(open_store: Any) -> None:
    live: CheckpointStore = await open_store("default")
    replay: CheckpointStore = await open_store("replay-2024")
    await live.create_if_absent("s-1")
    lease = await live.acquire("s-1", "live")
    await live.checkpoint(lease, "999")
    assert await replay.get("s-1") is None
    await replay.create_if_absent("s-1")
    replay_lease = await replay.acquire("s-1", "replayer")
    await replay.checkpoint(replay_lease, "1")
    stored = await live.get("s-1")
    assert stored is not None
    assert (stored.owner, stored.checkpoint) == ("live", "999")


@pytest.mark.parametrize(
    ("sequence_number", "sub_sequence_number"),
    [("", 0), ("12a", 0), ("-1", 0), ("LATEST", 0), ("100", -1)],
)
async def test_bad_checkpoint_values_are_rejected_before_io(
    store: CheckpointStore, sequence_number: str, sub_sequence_number: int
) -> None:
    lease = Lease("s-1", "worker-a", 1, None)
    with pytest.raises(ValidationError):
        await store.checkpoint(lease, sequence_number, sub_sequence_number)


async def test_bad_shard_ids_are_rejected(store: CheckpointStore) -> None:
    with pytest.raises(ValidationError):
        await store.create_if_absent("")
    with pytest.raises(ValidationError):
        await store.get("x" * 300)
