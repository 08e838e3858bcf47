"""An append-only JSON-lines file that holds each identity at most once.

Both the file sink and the local dead-letter file need the same thing: append records
durably (flush + fsync before acknowledging) and never append a second line for an
identity already in the file, so replays and redeliveries leave the file unchanged.  The
index of identities is rebuilt from the file when it is opened; a torn last line left by a
crash is cut off, because its record was never acknowledged and will be delivered again.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shardline.errors import ConfigurationError

__all__ = ["JsonlIdentityFile"]


class JsonlIdentityFile:
    """JSON-lines file with an in-memory index of the ``id_field`` of every line."""

    def __init__(self, path: str | os.PathLike[str], *, id_field: str = "id") -> None:
        self.path = Path(path)
        self.id_field = id_field
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        self._load()

    def __repr__(self) -> str:
        return f"JsonlIdentityFile({str(self.path)!r}, lines={len(self._ids)})"

    def _load(self) -> None:
        if self.path.is_dir():
            raise ConfigurationError(f"{self.path} is a directory, not a JSON-lines file")
        if not self.path.exists():
            return
        good_end = 0
        with self.path.open("rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # torn write: never acknowledged, cut off below
                good_end += len(line)
                try:
                    identity = json.loads(line)[self.id_field]
                except (ValueError, KeyError, TypeError):
                    continue
                self._ids.add(str(identity))
        if good_end != self.path.stat().st_size:
            with self.path.open("r+b") as handle:
                handle.truncate(good_end)

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
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("ab") as handle:
                    handle.write(b"".join(lines))
                    handle.flush()
                    os.fsync(handle.fileno())
                self._ids |= batch_ids
            return fresh
