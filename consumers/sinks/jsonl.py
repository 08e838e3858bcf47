"""An append-only JSON-lines file that holds each identity at most once.

Both the file sink and the local dead-letter file need the same thing: append records
durably (flush + fsync before acknowledging) and never append a second line for an
identity already in the file, so replays and redeliveries leave the file unchanged.  The
index of identities is rebuilt from the file when it is opened.

The file is only ever appended to, never truncated or rewritten: a torn last line left by
a crash (its record was never acknowledged and will be delivered again) stays as it is and
the next append starts on a new line, so it reads back as one malformed line.  A file that
exists but was not written by Shardline (its first line is not a JSON object with the
identity field) is refused rather than appended to.  New files are created 0600 in
directories created 0700 (:mod:`shardline.localfiles`).
"""

from __future__ import annotations

import json
import os
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
        if self.path.is_dir():
            raise ConfigurationError(f"{self.path} is a directory, not a JSON-lines file")
        if not self.path.exists():
            return
        size = 0
        first = True
        with self.path.open("rb") as handle:
            for line in handle:
                size += len(line)
                if first:
                    self._check_ours(line)
                    first = False
                if not line.endswith(b"\n"):
                    self._needs_newline = True  # torn write: never acknowledged; left in place
                    break
                try:
                    identity = json.loads(line)[self.id_field]
                except (ValueError, KeyError, TypeError):
                    continue
                self._ids.add(str(identity))

    def _check_ours(self, line: bytes) -> None:
        """Refuse a file some other program wrote: appending would modify it."""
        ours = line.startswith(b"{")
        if ours and line.endswith(b"\n"):
            try:
                ours = self.id_field in json.loads(line)
            except (ValueError, TypeError):
                ours = False
        if not ours:
            raise ConfigurationError(
                f"{self.path} exists and is not a Shardline JSON-lines file; refusing to append to it"
            )

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
