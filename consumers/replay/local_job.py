"""One run at a time of a single-process replay job, always over the range it began with.

``shardline replay SOURCE --name NAME`` keeps its checkpoints in a SQLite file under the
namespace ``replay-NAME`` and resumes from them: a partition it finished is skipped, a
half-done one goes on from its checkpoint.  Two things made those checkpoints lie, and both
are refused here before anything is read:

* **A second run of the job while the first runs** (a cron entry overlapping itself, a command
  started twice).  A run takes every partition's lease as its own (that is how a crashed run is
  resumed), so the two wrote the same records side by side until one of them stopped.  A run
  holds an exclusive ``flock`` on ``FILE.replay-NAME.lock`` beside the checkpoint file; the
  kernel releases it when the process ends, however it ends, so a killed run never blocks its
  own resumption.  A second run is refused with :class:`JobRunningError`.
* **The same name over another range** (a new window, another topic's offsets, another sink
  or transform).  The checkpoints say where the *first* range stopped: applied to another one,
  every partition finished before was skipped as "already complete", and a Kafka offset of the
  old range skipped the start of the new one, with exit status 0.  The first run binds the
  namespace to a fingerprint of what it replays (source, range, sink, transform); a run with
  another fingerprint is refused with :class:`JobRangeMismatchError` once the namespace holds
  any checkpoint (before that nothing was done under it, and the new run binds it instead).
  A namespace checkpointed before bindings existed is bound by its next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path

from shardline.errors import CheckpointError, ConfigurationError
from shardline.localfiles import PRIVATE_FILE_MODE, create_private_file

__all__ = ["JobRangeMismatchError", "JobRunningError", "bind_job", "job_lock", "lock_path"]

_NAME_MAX = 255  # bytes in one path component (Linux, macOS)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS shardline_replay_jobs (
    namespace TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    summary TEXT NOT NULL
)
"""


class JobRunningError(CheckpointError):
    """Another run of the same replay job (same checkpoint file and name) is running."""


class JobRangeMismatchError(ConfigurationError):
    """The job's checkpoints belong to another range, sink or transform under the same name."""


def lock_path(database: str, namespace: str) -> Path:
    """``FILE.NAMESPACE.lock`` beside the checkpoint file, symbolic links resolved so that two
    runs naming one file by different links share the lock (a digest of the namespace when
    that name would be too long for the file system)."""
    path = Path(os.path.realpath(database))
    name = f"{path.name}.{namespace}.lock"
    if len(name.encode()) > _NAME_MAX:
        name = f"{path.name[:100]}.{hashlib.sha256(namespace.encode()).hexdigest()[:32]}.lock"
    return path.with_name(name)


@contextlib.contextmanager
def job_lock(database: str, namespace: str, *, name: str) -> Iterator[None]:
    """Hold the job's lock for the block; :class:`JobRunningError` at once if a run holds it."""
    if database == ":memory:":  # nothing outlives the process: nobody to share it with
        yield
        return
    path = lock_path(database, namespace)
    try:
        create_private_file(path)
        descriptor = os.open(path, os.O_RDWR, PRIVATE_FILE_MODE)
    except OSError as exc:
        reason = exc.strerror or exc
        raise CheckpointError(f"cannot open the job's lock file {str(path)!r}: {reason}") from exc
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobRunningError(
                f"replay job {name!r} is running in another process (it holds {str(path)!r}): two runs "
                "of one job never run at once; wait for it to end (a rerun then resumes from its "
                "checkpoints), or give this replay another --name"
            ) from None
        except OSError as exc:
            raise CheckpointError(f"cannot lock {str(path)!r}: {exc.strerror or exc}") from exc
        yield
    finally:
        os.close(descriptor)  # releases the lock


def fingerprint(job: Mapping[str, object]) -> str:
    """SHA-256 of the canonical JSON of ``job`` (what the run replays, and where to)."""
    canonical = json.dumps(dict(job), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def bind_job(database: str, namespace: str, job: Mapping[str, object], *, summary: str) -> None:
    """Bind ``namespace`` to ``job`` on first use; refuse another job once it has a checkpoint.

    ``summary`` (no credentials: it is stored and shown) says what ``job`` is in the refusal
    a later run with another fingerprint gets.
    """
    if database == ":memory:":
        return
    digest = fingerprint(job)
    try:
        bound = await asyncio.to_thread(_bind, database, namespace, digest, summary)
    except (sqlite3.Error, OSError) as exc:
        raise CheckpointError(f"cannot read the job's binding in {database!r}: {exc}") from exc
    if bound is not None:
        raise JobRangeMismatchError(
            f"the checkpoints of this replay's name (namespace {namespace!r} in {database!r}) belong "
            f"to another range: {bound}; this run: {summary}.  Resumed over this one, they would skip "
            "what the other range finished: give this replay another --name (or run the other "
            "range's arguments again to finish it)"
        )


def _bind(database: str, namespace: str, digest: str, summary: str) -> str | None:
    """The summary the namespace is bound to when it is another job's with progress, else ``None``
    (after binding it to ``digest``)."""
    create_private_file(database)
    connection = sqlite3.connect(database, timeout=30.0, isolation_level=None)
    try:
        connection.execute(_SCHEMA)
        connection.execute("BEGIN IMMEDIATE")  # one binding wins when two first runs race
        row = connection.execute(
            "SELECT fingerprint, summary FROM shardline_replay_jobs WHERE namespace = ?", (namespace,)
        ).fetchone()
        if row is not None and row[0] != digest and _has_progress(connection, namespace):
            connection.execute("ROLLBACK")
            return str(row[1])
        connection.execute(
            "INSERT OR REPLACE INTO shardline_replay_jobs (namespace, fingerprint, summary) VALUES (?, ?, ?)",
            (namespace, digest, summary),
        )
        connection.execute("COMMIT")
    finally:
        connection.close()  # an open transaction is rolled back
    return None


def _has_progress(connection: sqlite3.Connection, namespace: str) -> bool:
    """Whether any lease of ``namespace`` holds a checkpoint (the store's table may not exist yet)."""
    table = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'shardline_leases'"
    ).fetchone()
    if table is None:
        return False
    row = connection.execute(
        "SELECT 1 FROM shardline_leases WHERE namespace = ? AND checkpoint IS NOT NULL LIMIT 1", (namespace,)
    ).fetchone()
    return row is not None
