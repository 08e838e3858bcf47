"""Local files Shardline writes (file sinks, dead letters, SQLite checkpoints): private, append-only.

Dead letters hold payloads in base64 and checkpoint databases name streams and owners, so
what Shardline creates is readable by its own user only: directories 0700, files 0600,
whatever the umask.  Existing files and directories keep the permissions they have (they
are not ours to change).  A path taken from a URI must not climb out of where it points:
a ``..`` segment, also percent-encoded (``%2e%2e``), is refused.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from shardline.errors import ConfigurationError

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "create_private_file",
    "ensure_private_dir",
    "open_private_append",
    "refuse_parent_segments",
]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def refuse_parent_segments(decoded_path: str, uri: str) -> str:
    """``decoded_path`` (already percent-decoded) unless it has a ``..`` segment.

    The message names the URI without any ``user:password@``.
    """
    from shardline.endpoints import redact_url

    segments = PurePosixPath(decoded_path.replace("\\", "/")).parts
    if ".." in segments:
        raise ConfigurationError(f"a '..' path segment is not allowed in {redact_url(uri)!r}")
    return decoded_path


def ensure_private_dir(directory: str | os.PathLike[str]) -> None:
    """Create ``directory`` and its missing parents, each 0700; existing ones are left alone."""
    path = Path(directory)
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(created, PRIVATE_DIR_MODE)  # mkdir's mode is masked by the umask


def create_private_file(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` empty with mode 0600 (parents 0700) unless it exists; True when created."""
    target = Path(path)
    ensure_private_dir(target.parent)
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)  # the umask may have cleared bits; never adds any
    finally:
        os.close(descriptor)
    return True


def open_private_append(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for appending only (never truncating); a new file is created 0600."""
    target = Path(path)
    ensure_private_dir(target.parent)
    descriptor = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
    return os.fdopen(descriptor, "ab")
