"""Where a run's files go: an ``--out`` directory checked before the run, files replaced whole.

A run measures for minutes before it writes anything, so an ``--out`` that cannot take files
(a path that is a file, a read-only disk) is refused before the run starts.  The files are
then written beside their final names and renamed into place together: a disk that fills up
while they are written leaves the previous run's ``result.json`` and ``report.html`` as they
were, never a truncated result or a new result beside an old report.

Before this, either failure reached the command as an ``OSError``, which it reported as a
connection failure to retry ("TransientServiceError: FileExistsError (connection or timeout)").
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from shardline.errors import ConfigurationError, ShardlineError

__all__ = ["OutputWriteError", "output_dir", "replace_files"]


class OutputWriteError(ShardlineError):
    """A result could not be written where ``--out`` points (the disk is full, or went read-only)."""


def output_dir(path: str | None, option: str = "--out") -> Path:
    """The directory ``path`` (default ``bench-results``), created if missing and shown to take
    files; :class:`ConfigurationError` naming ``option`` when it cannot be used."""
    directory = Path(path or "bench-results")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # a directory that exists may still refuse files (read-only mount, permissions)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".stream-bench-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigurationError(f"{option} {directory}: cannot write files there ({reason})") from None
    return directory


def replace_files(files: Mapping[Path, bytes]) -> None:
    """Write every file of ``files`` beside its name, then rename each into place.

    :class:`OutputWriteError` (and no file changed) when any of them cannot be written.
    """
    staged: dict[Path, str] = {}
    try:
        for path, body in files.items():
            descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            staged[path] = temporary
            with open(descriptor, "wb") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
        for path, temporary in staged.items():
            os.replace(temporary, path)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        names = ", ".join(str(path) for path in files)
        raise OutputWriteError(f"cannot write {names} ({reason})") from None
    finally:
        for temporary in staged.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
