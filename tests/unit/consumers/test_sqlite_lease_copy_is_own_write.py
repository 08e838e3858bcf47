"""Two processes sharing a SQLite checkpoint file: the lease a write returns is the row that
write produced.  The store used to read the row back in a statement of its own, so a write
another process made in between came back as this worker's copy, and with the other
worker's owner and counter this worker passed that worker's fencing."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from consumers.checkpoint.base import Lease
from consumers.checkpoint.sqlite import SQLiteCheckpointStore
from shardline.errors import LeaseLostError

SHARD = "shardId-000000000000"


class _OtherProcessWritesAfterOurUpdate:
    """A connection that, right after this store's first conditional UPDATE, lets a second
    connection (another process) try to take the lease.  It never waits for a lock: a
    refused write is recorded, so the test is bounded whichever way it goes."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._connection = connection
        self._path = path
        self.armed = False
        self.other_wrote: bool | None = None

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        cursor = self._connection.execute(sql, parameters)
        if self.armed and sql.lstrip().upper().startswith("UPDATE"):
            self.armed = False
            other = sqlite3.connect(self._path, timeout=0, isolation_level=None)
            try:
                other.execute(
                    "UPDATE shardline_leases SET lease_owner = 'worker-b', lease_counter = lease_counter + 1 "
                    "WHERE lease_key = ?",
                    (SHARD,),
                )
                self.other_wrote = True
            except sqlite3.OperationalError:  # locked: it has to wait for our transaction
                self.other_wrote = False
            finally:
                other.close()
        return cursor

    @property
    def in_transaction(self) -> bool:
        return self._connection.in_transaction

    def close(self) -> None:
        self._connection.close()


_Racing = tuple[SQLiteCheckpointStore, Callable[[], _OtherProcessWritesAfterOurUpdate]]


@pytest.fixture
def racing_store(tmp_path: Path) -> _Racing:
    path = tmp_path / "leases.db"
    store = SQLiteCheckpointStore(path)
    connect = store._connect
    proxies: list[_OtherProcessWritesAfterOurUpdate] = []

    def proxied() -> Any:
        proxy = _OtherProcessWritesAfterOurUpdate(connect(), path)
        proxies.append(proxy)
        return proxy

    store._connect = proxied  # type: ignore[method-assign]
    return store, lambda: proxies[0]


def _writes(store: SQLiteCheckpointStore) -> dict[str, Callable[[Lease], Awaitable[Lease]]]:
    return {"renew": store.renew, "checkpoint": lambda lease: store.checkpoint(lease, "100")}


async def test_acquire_returns_its_own_take_not_a_take_by_another_process(racing_store: Any) -> None:
    store, proxy = racing_store
    await store.create_if_absent(SHARD)
    proxy().armed = True

    lease = await store.acquire(SHARD, "worker-a")

    assert (lease.owner, lease.counter) == ("worker-a", 1)
    assert proxy().other_wrote is False  # the other process waited for the take to commit
    await store.close()


@pytest.mark.parametrize("write", ["renew", "checkpoint"])
async def test_an_owner_write_returns_its_own_row_and_stays_fenced(racing_store: Any, write: str) -> None:
    store, proxy = racing_store
    await store.create_if_absent(SHARD)
    taken = await store.acquire(SHARD, "worker-a")
    proxy().armed = True

    lease = await _writes(store)[write](taken)

    assert (lease.owner, lease.counter) == ("worker-a", 2 if write == "renew" else 1)
    assert proxy().other_wrote is False
    # the other process takes the lease now: our copy must be fenced out, not pass as theirs
    thief = SQLiteCheckpointStore(store.path)
    await thief.acquire(SHARD, "worker-b")
    with pytest.raises(LeaseLostError):
        await store.checkpoint(lease, "200")
    final = await thief.get(SHARD)
    assert final is not None and final.owner == "worker-b" and final.checkpoint != "200"
    await thief.close()
    await store.close()
