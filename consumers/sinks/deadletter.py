"""Dead-letter destinations: a local JSON-lines file, or S3 objects.

Each entry carries the reason, the error type, the record's position (stream, shard,
sequence and sub-sequence, or topic, partition and offset), the attempts made and the
payload in base64, so a poison record can be inspected and replayed later.  Both
destinations are idempotent: the file keeps one line per record identity, and an S3 put
uses a key derived from the entries so a retried put overwrites instead of duplicating.
Payloads are never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from consumers.sinks.awsclient import LazyClient
from consumers.sinks.base import DeadLetterEntry
from consumers.sinks.encoding import record_to_dict
from consumers.sinks.jsonl import JsonlIdentityFile
from shardline.errormap import map_aws_errors
from shardline.errors import ConfigurationError

__all__ = ["FileDeadLetter", "MemoryDeadLetter", "S3DeadLetter", "dead_letter_to_dict", "s3_dead_letter"]

_ACCOUNT_ID = re.compile(r"[0-9]{12}")


def dead_letter_to_dict(entry: DeadLetterEntry) -> dict[str, Any]:
    """The JSON form of a dead-letter entry (the record's fields plus why it failed)."""
    out = record_to_dict(entry.record)
    out.update(
        reason=entry.reason,
        error_type=entry.error_type,
        attempts=entry.attempts,
        destination=entry.destination,
    )
    return out


def _identities_text(identities: Sequence[str]) -> bytes:
    """What an S3 dead letter's key digests: a different text for every list of identities.

    Positions hold no newline, so identities joined by newlines (the keys written so far, kept
    so a put retried across an upgrade overwrites its object) tell them apart.  A signed event
    id is the producer's text: one holding a newline (``"a\\nb"``) joined to the same text as
    two identities (``"a"``, ``"b"``) and its dead letter overwrote theirs.  Such lists, and any
    identity with a NUL or without a UTF-8 form, are digested as a JSON array behind a NUL, which
    no newline-joined text of identities free of both can start with.
    """
    if not any("\n" in identity or "\x00" in identity for identity in identities):
        try:
            return "\n".join(identities).encode()
        except UnicodeEncodeError:  # a lone surrogate: spelt out by the JSON form below
            pass
    return b"\x00" + json.dumps(list(identities)).encode("ascii")


class FileDeadLetter:
    """Dead letters appended to a local JSON-lines file, one line per record identity."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.file = JsonlIdentityFile(path)

    def __repr__(self) -> str:
        return f"FileDeadLetter({str(self.file.path)!r})"

    async def put(self, entries: Sequence[DeadLetterEntry]) -> None:
        if entries:
            await asyncio.to_thread(self.file.append, [dead_letter_to_dict(entry) for entry in entries])

    async def close(self) -> None:
        return None


class MemoryDeadLetter:
    """Keeps dead letters in a dict by identity; for tests and dry runs."""

    def __init__(self) -> None:
        self.entries: dict[str, DeadLetterEntry] = {}

    def __repr__(self) -> str:
        return f"MemoryDeadLetter(entries={len(self.entries)})"

    async def put(self, entries: Sequence[DeadLetterEntry]) -> None:
        for entry in entries:
            self.entries.setdefault(entry.record.identity, entry)

    async def close(self) -> None:
        return None


class S3DeadLetter:
    """One S3 object per ``put``: JSON lines under ``prefix``, keyed by a digest of the entries.

    The key is ``PREFIX/YYYY/MM/DD/<sha256 of the identities>.jsonl``, where the date is
    the first record's arrival day (``undated`` when unknown), so a retried put writes the
    same key and the bucket ends up with one object, not two.  ``client`` is an aiobotocore S3
    client (injected; the URI helper builds one from the standard AWS configuration).

    ``expected_bucket_owner`` (a 12-digit account id) is sent with every put: S3 refuses the
    write when the bucket belongs to another account, so dead letters (which hold payloads)
    never land in a bucket that was deleted and re-created by someone else under the same name.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any | None = None,
        session: Any | None = None,
        endpoint_url: str | None = None,
        expected_bucket_owner: str | None = None,
    ) -> None:
        if expected_bucket_owner is not None and not _ACCOUNT_ID.fullmatch(expected_bucket_owner):
            raise ConfigurationError("expected_bucket_owner must be a 12-digit AWS account id")
        self.client = LazyClient("s3", client=client, session=session, endpoint_url=endpoint_url)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._owner = {} if expected_bucket_owner is None else {"ExpectedBucketOwner": expected_bucket_owner}

    def __repr__(self) -> str:
        return f"S3DeadLetter(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def key_for(self, entries: Sequence[DeadLetterEntry]) -> str:
        digest = hashlib.sha256(_identities_text([e.record.identity for e in entries])).hexdigest()
        first = entries[0].record.arrival_time
        # Without an arrival time the folder is fixed, not today's: a put retried (or a run
        # replayed) after midnight wrote a second object for the same entries.
        day = "undated" if first is None else first.astimezone(UTC).strftime("%Y/%m/%d")
        return "/".join(part for part in (self.prefix, day, f"{digest}.jsonl") if part)

    async def put(self, entries: Sequence[DeadLetterEntry]) -> None:
        if not entries:
            return
        body = b"".join(
            json.dumps(dead_letter_to_dict(e), separators=(",", ":"), sort_keys=True).encode() + b"\n"
            for e in entries
        )
        client = await self.client.get()
        with map_aws_errors("s3"):
            await client.put_object(
                Bucket=self.bucket,
                Key=self.key_for(entries),
                Body=body,
                ContentType="application/x-ndjson",
                **self._owner,  # ExpectedBucketOwner when configured
            )

    async def close(self) -> None:
        await self.client.close()


def s3_dead_letter(bucket: str, prefix: str = "", **options: Any) -> S3DeadLetter:
    """``s3://BUCKET/PREFIX`` as a dead-letter destination (options: client, session, endpoint_url,
    expected_bucket_owner)."""
    return S3DeadLetter(bucket, prefix, **options)
