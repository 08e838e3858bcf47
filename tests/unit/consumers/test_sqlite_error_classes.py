"""Which SQLite checkpoint errors are retriable: a busy database, whether it was busy at open
or at a write, is; a database that can never take the write (read-only, a table of another
shape) is not.

Every ``sqlite3.OperationalError`` used to count as "locked, try again", and every error
while opening as final.  So a consumer on a read-only checkpoint file retried its shard
discovery for ever, reading nothing and never exiting, while one that met the file locked
by another process at start-up stopped at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import consumers.checkpoint.sqlite as sqlite_store
from consumers.checkpoint.sqlite import SQLiteCheckpointStore
from consumers.kinesis import KinesisSource
from shardline.errors import CheckpointError
from tests.unit.consumers.kinesis.test_kinesis_source_leases import FAST, TwoShards

BOUND = 10.0
SHARD = "shard-0"

# Another process locks the database and says so, and keeps the lock until it is killed.
# "write": an open write transaction, which every other writer waits for; "all": the database
# taken for itself (exclusive locking mode), which a connection being opened waits for too.
_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "all":
    connection.execute("PRAGMA locking_mode=EXCLUSIVE")
    connection.execute("BEGIN EXCLUSIVE")
    connection.execute("UPDATE shardline_leases SET lease_counter = lease_counter")
    connection.execute("COMMIT")
else:
    connection.execute("BEGIN IMMEDIATE")
print("holding", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_store, "_BUSY_TIMEOUT_SECONDS", 0.2)


@contextlib.contextmanager
def held_by_another_process(path: Path, lock: str) -> Iterator[None]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), lock],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "holding\n"  # bounded: the child exits on any error
        yield
    finally:
        holder.kill()
        holder.communicate(timeout=BOUND)


async def _created(path: Path) -> None:
    store = SQLiteCheckpointStore(path)
    await store.create_if_absent(SHARD)
    await store.close()


@pytest.mark.usefixtures("short_busy_timeout")
async def test_a_database_locked_by_another_process_is_retriable_at_a_write_and_at_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "leases.db"
    await _created(path)
    running = SQLiteCheckpointStore(path)
    lease = await running.acquire(SHARD, "worker-a")
    with held_by_another_process(path, "write"), pytest.raises(CheckpointError, match="locked") as at_write:
        await asyncio.wait_for(running.renew(lease), BOUND)
    assert at_write.value.retriable
    await running.close()  # the other process can take the whole database only now
    starting = SQLiteCheckpointStore(path)
    with held_by_another_process(path, "all"), pytest.raises(CheckpointError, match="locked") as at_open:
        await asyncio.wait_for(starting.list(), BOUND)
    assert at_open.value.retriable  # before: final, so a consumer starting then stopped at once
    # once the other process is gone, the store opens and writes
    assert (await starting.renew(lease)).counter == lease.counter + 1
    await starting.close()


def _read_only(store: SQLiteCheckpointStore) -> None:
    """The database as on a read-only mount or file: SQLite refuses every write
    (SQLITE_READONLY).  The tests may run as root, who may write any file."""
    connect = store._connect

    def connect_read_only() -> sqlite3.Connection:
        connection = connect()
        connection.execute("PRAGMA query_only = ON")
        return connection

    store._connect = connect_read_only  # type: ignore[method-assign]


async def test_a_read_only_database_is_a_final_error(tmp_path: Path) -> None:
    path = tmp_path / "leases.db"
    await _created(path)
    store = SQLiteCheckpointStore(path)
    _read_only(store)
    assert [lease.shard_id for lease in await store.list()] == [SHARD]  # reading works
    with pytest.raises(CheckpointError, match="readonly") as refused:
        await store.acquire(SHARD, "worker-a")
    assert not refused.value.retriable
    await store.close()


async def test_a_source_on_a_read_only_database_stops_instead_of_retrying_for_ever(tmp_path: Path) -> None:
    path = tmp_path / "leases.db"
    await _created(path)
    store = SQLiteCheckpointStore(path)
    _read_only(store)
    source = KinesisSource("s", store=store, owner="A", client=TwoShards([("k", b"x")]), config=FAST)
    with pytest.raises(CheckpointError, match="readonly"):
        async with asyncio.timeout(BOUND):  # before: discovery failed and retried for ever
            async for _batch in source.batches():
                pass
    await source.close()
    await store.close()


async def test_a_table_of_another_shape_is_a_final_error(tmp_path: Path) -> None:
    path = tmp_path / "leases.db"
    connection = sqlite3.connect(path)
    with connection:  # another version's or another program's table of that name
        connection.execute(
            "CREATE TABLE shardline_leases "
            "(namespace TEXT, lease_key TEXT, owner TEXT, PRIMARY KEY (namespace, lease_key))"
        )
    connection.close()
    store = SQLiteCheckpointStore(path)
    with pytest.raises(CheckpointError, match="no column") as refused:
        await store.create_if_absent(SHARD)
    assert not refused.value.retriable
    await store.close()


@pytest.mark.parametrize("uri_path", ["leases%00.db", "dir%00/leases.db"])
def test_a_path_with_a_nul_character_is_a_checkpoint_error_not_a_value_error(uri_path: str) -> None:
    from consumers.checkpoint.uri import open_checkpoint_store

    with pytest.raises(CheckpointError, match="NUL"):
        open_checkpoint_store(f"sqlite:///{uri_path}")
