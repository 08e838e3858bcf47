"""An embedded checkpoint store for single-machine consumers: one SQLite file.

SQLite is synchronous, so every call runs in a worker thread (``asyncio.to_thread``) and
never blocks the event loop.  The database is in WAL mode so a reader never waits for a
writer, and each conditional write is a single ``UPDATE ... WHERE owner = ? AND counter = ?``
whose row count says whether the fencing condition held: the same compare-and-set the
DynamoDB store gets from a ConditionExpression.  Several processes may share the file
(a restarted consumer, a second worker on the same machine), so every write runs in one
``BEGIN IMMEDIATE`` transaction with the read of the lease it returns: the copy a caller
gets back is the row its own write produced, never a row another process wrote in between
(a copy carrying the other worker's owner and counter passed that worker's fencing).

Namespaces live side by side in one table, keyed by (namespace, shard id), so a replay job
with its own namespace never touches a live consumer's checkpoints.

The file's ``PRAGMA user_version`` records the table's layout (:data:`SCHEMA_VERSION`), so a
file written by a later, incompatible release, or the database of another application that
stamps its own version, is refused at open instead of being read and written as if it were
this layout.  Files from releases that stamped no version (user_version 0, with this table)
are adopted and stamped.  A version-0 file with other tables is not refused: the replay
command keeps its job table (``shardline_replay_jobs``) in the same file.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from consumers.checkpoint.base import (
    DEFAULT_NAMESPACE,
    Lease,
    unchanged_since,
    validate_checkpoint_value,
    validate_initial_position,
    validate_namespace,
    validate_shard_id,
)
from shardline.errors import CheckpointError, ClosedError, LeaseLostError, LeaseRowError, ValidationError
from shardline.localfiles import create_private_file

__all__ = ["SCHEMA_VERSION", "SQLiteCheckpointStore"]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shardline_leases (
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
SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the layout in :data:`_SCHEMA` (0: a file written before it was set)."""
_COLUMNS = (
    "lease_key, lease_owner, lease_counter, checkpoint, checkpoint_sub_sequence_number, parent_shard_ids"
)
_BUSY_TIMEOUT_SECONDS = 30.0


class SQLiteCheckpointStore:
    """Leases of one namespace in a SQLite database file.

    ``path`` may be ``":memory:"`` for a private, non-durable database.
    """

    def __init__(self, path: str | Path, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.namespace = validate_namespace(namespace)
        self.path = str(path)
        if not self.path:
            raise CheckpointError("SQLite checkpoint store needs a database path")
        if "\x00" in self.path:  # no file has such a name: opening it raised a bare ValueError
            raise CheckpointError("a SQLite checkpoint database path cannot contain a NUL character")
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"SQLiteCheckpointStore(path={self.path!r}, namespace={self.namespace!r})"

    # --- connection handling ------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            create_private_file(self.path)  # 0600 in 0700 directories; the WAL files follow its mode
        connection = sqlite3.connect(
            self.path,
            timeout=_BUSY_TIMEOUT_SECONDS,
            isolation_level=None,  # explicit transactions only
            check_same_thread=False,  # used from worker threads, serialised by self._lock
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            _prepare_schema(connection, self.path)
        except BaseException:
            connection.close()  # the next call opens it afresh
            raise
        return connection

    async def _run(self, operation: Callable[[sqlite3.Connection], _T], *, write: bool = False) -> _T:
        return await asyncio.to_thread(self._run_sync, operation, write)

    def _run_sync(self, operation: Callable[[sqlite3.Connection], _T], write: bool = False) -> _T:
        with self._lock:
            if self._connection is None:
                if self._closed:
                    raise ClosedError("checkpoint store is closed")
                try:
                    self._connection = self._connect()
                except sqlite3.Error as exc:
                    raise _database_error("cannot open checkpoint database", exc) from exc
                except OSError as exc:
                    # creating the file or its directories (a parent that is a file, no
                    # permission) fails before SQLite sees the path, and is no less typed
                    raise CheckpointError(f"cannot open checkpoint database: {exc}") from exc
            try:
                return _in_transaction(self._connection, operation) if write else operation(self._connection)
            except sqlite3.Error as exc:
                raise _database_error("checkpoint database error", exc) from exc

    # --- the protocol -------------------------------------------------------------------------

    async def create_if_absent(
        self, shard_id: str, parent_shard_ids: Sequence[str] = (), *, initial_position: str = "TRIM_HORIZON"
    ) -> None:
        # the lease holds no sentinel here: the consumer's own start position applies
        validate_initial_position(initial_position)
        validate_shard_id(shard_id)
        parents = json.dumps(sorted({validate_shard_id(parent) for parent in parent_shard_ids}))

        def insert(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT OR IGNORE INTO shardline_leases (namespace, lease_key, parent_shard_ids) "
                "VALUES (?, ?, ?)",
                (self.namespace, shard_id, parents),
            )

        await self._run(insert, write=True)

    async def get(self, shard_id: str) -> Lease | None:
        validate_shard_id(shard_id)
        return await self._run(lambda connection: self._select(connection, shard_id))

    async def list(self) -> builtins.list[Lease]:
        def select_all(connection: sqlite3.Connection) -> builtins.list[Lease]:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM shardline_leases WHERE namespace = ? ORDER BY lease_key",  # noqa: S608
                (self.namespace,),
            ).fetchall()
            leases: builtins.list[Lease] = []
            for row in rows:
                try:
                    leases.append(_lease_from_row(row))
                except LeaseRowError as exc:  # one bad row must not stop every shard
                    _log.warning("%s; its shard is left alone until the row is fixed", exc)
            return leases

        return await self._run(select_all)

    async def acquire(self, shard_id: str, owner: str, *, expected: Lease | None = None) -> Lease:
        validate_shard_id(shard_id)
        if not owner:
            raise CheckpointError("lease owner must be a non-empty string")

        def take(connection: sqlite3.Connection) -> Lease:
            current = self._select(connection, shard_id)
            if current is None:
                raise CheckpointError(f"no lease for shard {shard_id!r}; create it first")
            if not unchanged_since(current, expected):
                raise LeaseLostError(f"the lease on shard {shard_id!r} changed since it was listed")
            switched = 1 if current.owner != owner else 0
            cursor = connection.execute(
                "UPDATE shardline_leases SET lease_owner = ?, lease_counter = lease_counter + 1, "
                "owner_switches_since_checkpoint = owner_switches_since_checkpoint + ? "
                "WHERE namespace = ? AND lease_key = ? AND lease_owner IS ? AND lease_counter = ?",
                (owner, switched, self.namespace, shard_id, current.owner, current.counter),
            )
            if cursor.rowcount != 1:
                raise LeaseLostError(f"another worker took the lease on shard {shard_id!r} first")
            taken = self._select(connection, shard_id)
            assert taken is not None
            return taken

        return await self._run(take, write=True)

    async def renew(self, lease: Lease) -> Lease:
        def bump(connection: sqlite3.Connection) -> Lease:
            self._conditional_update(connection, lease, "lease_counter = lease_counter + 1", ())
            renewed = self._select(connection, lease.shard_id)
            assert renewed is not None
            return renewed

        return await self._run(bump, write=True)

    async def checkpoint(self, lease: Lease, sequence_number: str, sub_sequence_number: int = 0) -> Lease:
        validate_checkpoint_value(sequence_number, sub_sequence_number)

        def record(connection: sqlite3.Connection) -> Lease:
            self._conditional_update(
                connection,
                lease,
                "checkpoint = ?, checkpoint_sub_sequence_number = ?, owner_switches_since_checkpoint = 0",
                (sequence_number, sub_sequence_number),
            )
            updated = self._select(connection, lease.shard_id)
            assert updated is not None
            return updated

        return await self._run(record, write=True)

    async def release(self, lease: Lease) -> None:
        def clear(connection: sqlite3.Connection) -> None:
            try:
                self._conditional_update(connection, lease, "lease_owner = NULL", ())
            except LeaseLostError:
                return

        await self._run(clear, write=True)

    async def close(self) -> None:
        def shut() -> None:
            with self._lock:
                self._closed = True
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

        await asyncio.to_thread(shut)

    # --- helpers (run in the worker thread, under the lock) ----------------------------------

    def _select(self, connection: sqlite3.Connection, shard_id: str) -> Lease | None:
        row = connection.execute(
            f"SELECT {_COLUMNS} FROM shardline_leases WHERE namespace = ? AND lease_key = ?",  # noqa: S608
            (self.namespace, shard_id),
        ).fetchone()
        return None if row is None else _lease_from_row(row)

    def _conditional_update(
        self,
        connection: sqlite3.Connection,
        lease: Lease,
        assignments: str,
        values: tuple[object, ...],
    ) -> None:
        if lease.owner is None:
            raise LeaseLostError(f"lease on shard {lease.shard_id!r} has no owner")
        cursor = connection.execute(
            f"UPDATE shardline_leases SET {assignments} "  # noqa: S608 - assignments are constants
            "WHERE namespace = ? AND lease_key = ? AND lease_owner = ? AND lease_counter = ?",
            (*values, self.namespace, lease.shard_id, lease.owner, lease.counter),
        )
        if cursor.rowcount != 1:
            raise LeaseLostError(f"lease on shard {lease.shard_id!r} is held by another worker now")


_BUSY_RESULT_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_PROTOCOL})
"""Result codes of a database that was busy (PROTOCOL: a WAL lock race that SQLite gave up on)."""


def _database_error(context: str, exc: sqlite3.Error) -> CheckpointError:
    """``exc`` as a :class:`CheckpointError`, retriable only when the database was busy.

    A lock another process held past the busy timeout goes away, at open as at a write;
    a read-only file, a table of another shape or a damaged database stay as they are, and
    retried they kept shard discovery failing for ever instead of stopping the consumer.
    (Both kinds are ``sqlite3.OperationalError``: only the result code tells them apart.)
    """
    code = getattr(exc, "sqlite_errorcode", None)
    # an extended result code (SQLITE_BUSY_SNAPSHOT...) keeps its primary code in the low byte
    busy = isinstance(code, int) and (code & 0xFF) in _BUSY_RESULT_CODES
    return CheckpointError(f"{context}: {exc}", retriable=busy)


def _user_version(connection: sqlite3.Connection) -> int:
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    return int(version)


def _has_lease_table(connection: sqlite3.Connection) -> bool:
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'shardline_leases'"
    ).fetchone()
    return found is not None


def _refuse_unknown_layout(connection: sqlite3.Connection, path: str) -> None:
    """Raise a non-retriable :class:`CheckpointError` unless this store may use the file."""
    version = _user_version(connection)
    if version not in (0, SCHEMA_VERSION):
        raise CheckpointError(
            f"checkpoint database {path!r} has schema version {version}, which this release does not "
            f"know (it reads and writes version {SCHEMA_VERSION}): a newer shardline release or another "
            f"application wrote it; upgrade shardline, or give the store a file of its own"
        )


def _prepare_schema(connection: sqlite3.Connection, path: str) -> None:
    """Create the lease table in a new database, adopt one from before versions, refuse others.

    The check runs again inside the write transaction: another process may have created and
    stamped the file between the first look and the lock.  A file of this layout that cannot
    be written (read-only) is used unstamped, as before versions were set.
    """
    _refuse_unknown_layout(connection, path)
    if _user_version(connection) == SCHEMA_VERSION:
        connection.execute(_SCHEMA)  # a no-op unless the table was dropped by hand
        return
    adopting = _has_lease_table(connection)

    def create_and_stamp(connection: sqlite3.Connection) -> None:
        _refuse_unknown_layout(connection, path)
        connection.execute(_SCHEMA)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    try:
        _in_transaction(connection, create_and_stamp)
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        if not (adopting and isinstance(code, int) and (code & 0xFF) == sqlite3.SQLITE_READONLY):
            raise


def _in_transaction(connection: sqlite3.Connection, operation: Callable[[sqlite3.Connection], _T]) -> _T:
    """``operation`` as one write transaction, taken before its first read (``IMMEDIATE``).

    Another process's write waits (busy timeout) until this one commits, so the lease an
    operation reads back after its conditional ``UPDATE`` is the one it wrote, and the read
    that ``acquire`` bases its condition on is still current when the update runs.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = operation(connection)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:  # a failed COMMIT too: the next BEGIN must find none open
            with contextlib.suppress(sqlite3.Error):  # the original error is the one to report
                connection.execute("ROLLBACK")
        raise
    return result


def _lease_from_row(row: tuple[object, ...]) -> Lease:
    """A row as a :class:`Lease`; one this store never writes (SQLite keeps any value in any
    column) is a :class:`LeaseRowError` naming its shard, not a ``ValueError`` or a wrong lease."""
    shard_id, owner, counter, checkpoint, sub_sequence, parents = row
    try:
        if type(shard_id) is not str or not (owner is None or type(owner) is str):
            raise TypeError("its key or owner is not text")
        if type(counter) is not int or type(sub_sequence) is not int or sub_sequence < 0:
            raise TypeError("its counter or sub-sequence number is not a non-negative integer")
        if checkpoint is not None:
            if type(checkpoint) is not str:
                raise TypeError("its checkpoint is not text")
            validate_checkpoint_value(checkpoint, sub_sequence)
        parent_ids = json.loads(parents) if type(parents) is str and parents else parents or []
        if type(parent_ids) is not list or not all(type(parent) is str for parent in parent_ids):
            raise TypeError("its parents are not a list of shard ids")
    except (TypeError, ValueError, ValidationError) as exc:  # json's errors are ValueErrors
        reason = str(exc) if isinstance(exc, TypeError) else "its checkpoint or parents do not parse"
        raise LeaseRowError(f"lease row {str(shard_id)[:128]!r} is not a lease ({reason})") from None
    return Lease(
        shard_id=shard_id,
        owner=owner,
        counter=counter,
        checkpoint=checkpoint,
        sub_sequence_number=sub_sequence,
        parent_shard_ids=tuple(parent_ids),
    )
