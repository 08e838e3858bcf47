"""Transforms the KCL protocol tests hand to the processor process (``--transform``)."""

from __future__ import annotations

from shardline.records import ConsumedRecord


def reject_bad(record: ConsumedRecord) -> ConsumedRecord:
    """Raise for payloads starting with BAD (a poison record), pass the rest through."""
    if record.data.startswith(b"BAD"):
        raise ValueError("unparseable reading")
    return record


def drop_marked(record: ConsumedRecord) -> ConsumedRecord | None:
    """Drop payloads starting with DROP (a filter), pass the rest through."""
    return None if record.data.startswith(b"DROP") else record
