"""A JSON-lines file sink, idempotent by record identity.

One line per record identity (stream/shard/sequence/sub-sequence, Kafka
topic/partition/offset, or the producer's event id) with the payload in base64 and the
record's position.  Writing an identity that is already in the file adds nothing, so a
replay or a redelivery leaves the file byte-for-byte the same.  Meant for local runs,
tests and small exports; the line layout is :func:`consumers.sinks.encoding.record_to_dict`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from consumers.sinks.base import BatchingSink, ChunkLimits, EntryResult
from consumers.sinks.encoding import record_to_dict
from consumers.sinks.jsonl import JsonlIdentityFile
from shardline.errors import SinkError
from shardline.records import ConsumedRecord

__all__ = ["FileSink"]


class FileSink(BatchingSink[dict[str, Any]]):
    """Appends each new record identity to a JSON-lines file, fsynced before ``write`` returns."""

    name = "file"
    limits = ChunkLimits(max_entries=10_000, max_bytes=16 * 1024 * 1024)

    def __init__(self, path: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file = JsonlIdentityFile(path)

    def __repr__(self) -> str:
        return f"FileSink({str(self.file.path)!r})"

    def encode(self, record: ConsumedRecord) -> dict[str, Any]:
        return record_to_dict(record)

    def entry_size(self, entry: dict[str, Any]) -> int:
        return len(entry["data"]) + 256

    async def send(self, entries: Sequence[dict[str, Any]]) -> Sequence[EntryResult]:
        try:
            fresh = await asyncio.to_thread(self.file.append, entries)
        except OSError as exc:
            # A full disk or a read-only file is the file's state, not a record's: as an
            # untyped error the pipeline bisected it and dead-lettered every record.
            raise SinkError(f"file sink cannot append to {self.file.path}: {exc.strerror or exc}") from exc
        return [EntryResult.written() if new else EntryResult.duplicate() for new in fresh]
