"""Bounded readers of a range: the protocol, and the Firehose S3 archive reader.

The Kinesis reader is in :mod:`consumers.replay.kinesis_range`.

A :class:`RangeReader` lists its partitions and reads one of them from a resume token to
the end of the range, yielding ``(records, token)`` pairs in order; ``token`` is the
decimal checkpoint value after the batch (a Kinesis sequence number, or a line count in an
archive object), so a job can persist it and resume after a crash.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from consumers.sinks.encoding import record_from_dict
from shardline.errors import SerializationError
from shardline.records import ConsumedRecord

__all__ = ["RangeReader", "S3ArchiveReader"]


class RangeReader(Protocol):
    """A finite range of records split into partitions that are read independently."""

    async def partitions(self) -> list[str]: ...

    def read(self, partition: str, after: str | None) -> AsyncIterator[tuple[Sequence[ConsumedRecord], str]]:
        """Batches of ``partition`` after the resume token ``after`` (``None``: from the start)."""
        ...


class S3ArchiveReader:
    """Backfill from the objects a Firehose sink delivered to S3 (one partition per object).

    Each object holds newline-delimited records in the layout of
    :func:`consumers.sinks.encoding.record_to_dict`, event id embedded; the resume token is
    the number of lines of the object already written.  Lines that do not parse are
    skipped and counted in :attr:`malformed` (they are reported, never silently fixed).
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "", *, batch_size: int = 500) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.lstrip("/")
        self.batch_size = batch_size
        self.malformed = 0

    def __repr__(self) -> str:
        return f"S3ArchiveReader(bucket={self.bucket!r}, prefix={self.prefix!r})"

    async def partitions(self) -> list[str]:
        keys: list[str] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
        while True:
            response = await self.client.list_objects_v2(**kwargs)
            keys.extend(item["Key"] for item in response.get("Contents", []))
            if not response.get("IsTruncated"):
                return sorted(keys)
            kwargs["ContinuationToken"] = response["NextContinuationToken"]

    async def read(
        self, partition: str, after: str | None
    ) -> AsyncIterator[tuple[Sequence[ConsumedRecord], str]]:
        response = await self.client.get_object(Bucket=self.bucket, Key=partition)
        async with response["Body"] as body:
            data: bytes = await body.read()
        done = int(after) if after is not None else 0
        batch: list[ConsumedRecord] = []
        lines = [line for line in data.split(b"\n") if line.strip()]
        for index, line in enumerate(lines[done:], start=done + 1):
            try:
                batch.append(record_from_dict(json.loads(line)))
            except (ValueError, SerializationError):
                self.malformed += 1
            if len(batch) >= self.batch_size:
                yield batch, str(index)
                batch = []
        if batch or len(lines) > done:
            yield batch, str(len(lines))
