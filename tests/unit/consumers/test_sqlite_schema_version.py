"""The SQLite checkpoint store stamps its layout in ``PRAGMA user_version`` and refuses a
file it cannot know: one a later release wrote in another layout, or a database of another
application that stamps its own version.

Such a file used to be opened and written silently: the store created its table next to
another application's and read a future layout's rows as if they were this one's.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import consumers.checkpoint.sqlite as sqlite_store
from consumers.checkpoint.sqlite import SCHEMA_VERSION, SQLiteCheckpointStore
from shardline.errors import CheckpointError

SHARD = "shard-0"

# the table as releases that stamped no version created it
_UNVERSIONED_SCHEMA = """
CREATE TABLE shardline_leases (
    namespace TEXT NOT NULL,
    lease_key TEXT NOT NULL,
    lease_owner TEXT,
    lease_counter INTEGER NOT NULL DEFAULT 0,
    checkpoint TEXT,
    checkpoint_sub_sequence_number INTEGER NOT NULL DEFAULT 0,
    owner_switches_since_checkpoint INTEGER NOT NULL DEFAULT 0,
    parent_shard_ids TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (namespace, lease_key)
)
"""


def _user_version(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        return int(version)
    finally:
        connection.close()


def _database(path: Path, *statements: str) -> Path:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            connection.execute(statement)
    finally:
        connection.close()
    return path


async def _checkpoint_and_read(path: Path) -> str | None:
    store = SQLiteCheckpointStore(path)
    try:
        await store.create_if_absent(SHARD)
        lease = await store.acquire(SHARD, "worker-a")
        await store.checkpoint(lease, "49590338271490256608559692538361571095921575989136588898")
        read = await store.get(SHARD)
        assert read is not None
        return read.checkpoint
    finally:
        await store.close()


def test_a_new_database_is_stamped_with_the_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "leases.db"
    assert asyncio.run(_checkpoint_and_read(path)) is not None
    assert SCHEMA_VERSION == 1 and _user_version(path) == SCHEMA_VERSION


def test_a_file_from_before_versions_is_adopted_with_its_leases_and_stamped(tmp_path: Path) -> None:
    path = _database(
        tmp_path / "old.db",
        _UNVERSIONED_SCHEMA,
        "INSERT INTO shardline_leases (namespace, lease_key, lease_owner, lease_counter, checkpoint) "
        "VALUES ('default', 'shard-old', 'worker-z', 7, '12345')",
    )
    assert _user_version(path) == 0

    async def read_old() -> tuple[str | None, int]:
        store = SQLiteCheckpointStore(path)
        try:
            lease = await store.get("shard-old")
            assert lease is not None
            return lease.checkpoint, lease.counter
        finally:
            await store.close()

    assert asyncio.run(read_old()) == ("12345", 7)
    assert _user_version(path) == SCHEMA_VERSION
    assert asyncio.run(_checkpoint_and_read(path)) is not None


def test_a_read_only_file_from_before_versions_is_used_unstamped(tmp_path: Path) -> None:
    path = _database(
        tmp_path / "old.db",
        "PRAGMA journal_mode=WAL",
        _UNVERSIONED_SCHEMA,
        "INSERT INTO shardline_leases (namespace, lease_key, checkpoint) VALUES ('default', 's', '1')",
    )
    # a read-only connection: file modes do not stop root, who runs some test environments
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        sqlite_store._prepare_schema(connection, str(path))
        assert connection.execute("SELECT checkpoint FROM shardline_leases").fetchall() == [("1",)]
    finally:
        connection.close()
    assert _user_version(path) == 0


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, 42, -1])
def test_a_file_of_an_unknown_schema_version_is_refused_and_left_alone(tmp_path: Path, version: int) -> None:
    path = _database(tmp_path / "future.db", _UNVERSIONED_SCHEMA, f"PRAGMA user_version = {version}")
    with pytest.raises(CheckpointError) as raised:
        asyncio.run(_checkpoint_and_read(path))
    error = raised.value
    assert not error.retriable
    message = str(error)
    assert f"schema version {version}" in message and "upgrade shardline" in message
    assert str(path) in message
    assert _user_version(path) == version


def test_another_applications_versioned_database_is_refused_without_a_lease_table(tmp_path: Path) -> None:
    path = _database(
        tmp_path / "app.db", "CREATE TABLE invoices (id INTEGER PRIMARY KEY)", "PRAGMA user_version = 3"
    )
    with pytest.raises(CheckpointError, match="schema version 3") as raised:
        asyncio.run(_checkpoint_and_read(path))
    assert not raised.value.retriable
    connection = sqlite3.connect(path)
    try:
        tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    finally:
        connection.close()
    assert tables == ["invoices"]
