"""Transforms the KCL protocol tests hand to the processor process (``--transform``)."""

from __future__ import annotations

from shardline.records import ConsumedRecord


def reject_bad(record: ConsumedRecord) -> ConsumedRecord:
    """Raise for payloads starting with BAD (a poison record), pass the rest through."""
    if record.data.startswith(b"BAD"):
        raise ValueError("unparseable reading")
    return record

