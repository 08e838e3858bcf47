"""An append-only JSON-lines file that holds each identity at most once.

Both the file sink and the local dead-letter file need the same thing: append records
durably (flush + fsync before acknowledging) and never append a second line for an
identity already in the file, so replays and redeliveries leave the file unchanged.  The
index of identities is rebuilt from the file when it is opened.

The file is only ever appended to, never truncated or rewritten: a torn last line left by
a crash (its record was never acknowledged and will be delivered again) stays as it is and
the next append starts on a new line, so it reads back as one malformed line.  A file that
exists but was not written by Shardline (its first line is not a JSON object with the
identity field, nor a torn line followed by one) is refused rather than appended to.  New
files are created 0600 in directories created 0700 (:mod:`shardline.localfiles`).
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shardline.errors import ConfigurationError
from shardline.localfiles import open_private_append

__all__ = ["JsonlIdentityFile"]


class JsonlIdentityFile:
    """JSON-lines file with an in-memory index of the ``id_field`` of every line."""

    def __init__(self, path: str | os.PathLike[str], *, id_field: str = "id") -> None:
        self.path = Path(path)
        self.id_field = id_field
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        self._needs_newline = False
        self._load()

    def __repr__(self) -> str:
        return f"JsonlIdentityFile({str(self.path)!r}, lines={len(self._ids)})"

    def _load(self) -> None:
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ConfigurationError(f"cannot use {self.path}: {exc.strerror or exc}") from exc
        except ValueError:  # an embedded NUL: no file can have that name
            raise ConfigurationError("a JSON-lines file path cannot contain a NUL character") from None
        if stat.S_ISDIR(mode):
            raise ConfigurationError(f"{self.path} is a directory, not a JSON-lines file")
        if not stat.S_ISREG(mode):
            # a device, a pipe or a terminal (--sink /dev/stdout): reading it to rebuild the
            # index never ended (/dev/zero filled memory, a FIFO or a tty blocked before the
            # consumer even started), and /dev/null took every write and kept none
            raise ConfigurationError(
                f"{self.path} is not a regular file (a device, a pipe or a terminal): "
                "a JSON-lines sink needs a file it can read back"
            )
        with self.path.open("rb") as handle:
            self._check_ours(handle.readline(), handle.readline())
            handle.seek(0)
            for line in handle:
                if not line.endswith(b"\n"):
                    self._needs_newline = True  # torn write: never acknowledged; left in place
                    break
                try:
                    identity = json.loads(line)[self.id_field]
                except (ValueError, KeyError, TypeError):
                    continue
                self._ids.add(str(identity))

    def _check_ours(self, first: bytes, second: bytes) -> None:
        """Refuse a file some other program wrote: appending would modify it.

        The first line is ours when it is a complete line with the identity field, or a line
        torn by a crash: the only line, cut short, or (once a later append ended it with a
        newline) one that does not parse, followed by a line of ours.  Judged by its first line
        alone, a file whose very first write was torn was taken on once and refused by every
        run after that: a job killed while writing its first batch could be resumed only once.
        """
        if not first:
            return  # an empty file
        ours = first.startswith(b"{") and (not first.endswith(b"\n") or self._is_line_of_ours(first))
        if not ours and first.startswith(b"{") and not _parses(first):
            ours = self._is_line_of_ours(second)
        if not ours:
            raise ConfigurationError(
                f"{self.path} exists and is not a Shardline JSON-lines file; refusing to append to it"
            )

    def _is_line_of_ours(self, line: bytes) -> bool:
        """A complete line holding a JSON object with the identity field."""
        if not line.endswith(b"\n"):
            return False
        try:
            parsed = json.loads(line)
        except ValueError:
            return False
        return isinstance(parsed, dict) and self.id_field in parsed

    def __contains__(self, identity: object) -> bool:
        return identity in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def append(self, objects: Sequence[dict[str, Any]]) -> list[bool]:
        """Append the objects whose identity is new; fsync; say per object whether it was new.

        Blocking; callers on an event loop run it in a thread.
        """
        with self._lock:
            fresh: list[bool] = []
            lines: list[bytes] = []
            batch_ids: set[str] = set()
            for obj in objects:
                identity = str(obj[self.id_field])
                new = identity not in self._ids and identity not in batch_ids
                fresh.append(new)
                if new:
                    batch_ids.add(identity)
                    lines.append(json.dumps(obj, separators=(",", ":"), sort_keys=True).encode() + b"\n")
            if lines:
                if self._needs_newline:
                    lines.insert(0, b"\n")  # end the torn line; never cut it off
                with open_private_append(self.path) as handle:
                    handle.write(b"".join(lines))
                    handle.flush()
                    os.fsync(handle.fileno())
                self._needs_newline = False
                self._ids |= batch_ids
            return fresh


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True
