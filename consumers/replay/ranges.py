"""Bounded readers of a range: the protocol, and the Firehose S3 archive reader.

The Kinesis reader is in :mod:`consumers.replay.kinesis_range`.

A :class:`RangeReader` lists its partitions and reads one of them from a resume token to
the end of the range, yielding ``(records, token)`` pairs in order; ``token`` is the
decimal checkpoint value after the batch (a Kinesis sequence number, or a line count in an
archive object), so a job can persist it and resume after a crash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import zlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Protocol

from consumers.checkpoint.base import MAX_SHARD_ID_CHARS
from consumers.sinks.encoding import record_from_dict
from shardline.errormap import map_aws_errors
from shardline.errors import ConfigurationError, ResourceNotFoundError, SerializationError, ShardlineError
from shardline.records import ConsumedRecord

__all__ = [
    "MAX_ARCHIVE_LINE_BYTES",
    "ArchiveObjectChangedError",
    "RangeReader",
    "S3ArchiveReader",
    "archive_partition_id",
]

_log = logging.getLogger(__name__)
_MAX_LINE_BRACKETS = 512
"""More brackets outside strings than a Shardline archive line can hold (it holds two)."""

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
"""A JSON string as the parser delimits it (an unterminated one runs to the end of the line).
Each byte matches one way only, so stripping strings is linear in the line, crafted or not."""


MAX_ARCHIVE_LINE_BYTES = 8 * 1024 * 1024
"""Longest archive line read (a 1000 KiB Firehose record base64-encoded with its metadata is ~1.4 MiB)."""

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_SNAPPY_FRAMED_MAGIC = b"\xff\x06\x00\x00sNaPpY"


_LINES_NAMED = 10
"""How many skipped line numbers an object's warning lists (its count says how many in all)."""

_LINES_PER_VERSION = 10**15
"""Resume token = version pin x this + lines read (more lines than a 5 TB object can hold)."""


class ArchiveObjectChangedError(ShardlineError):
    """An archive object was replaced (same key, other content) since a job began reading it,
    or deleted since the job listed it.

    Its checkpoint counts lines of the content first read; applied to the new content it would
    skip records that were never written.  The job stops instead of replaying something else,
    and names the object (S3's own NoSuchKey answer does not).
    """


def _version_pin(etag: object) -> int:
    """A number standing for the object's content (its ETag); 0 when S3 gave none."""
    if not isinstance(etag, str) or not etag:
        return 0
    return zlib.crc32(etag.encode()) + 1


def archive_partition_id(key: str) -> str:
    """The partition (and checkpoint) id of the archive object ``key``: the key itself, or, for a
    key longer than a checkpoint store keeps (S3 allows 1,024 characters, the stores 256), its
    SHA-256 digest.  Keys that fit keep their ids, so earlier checkpoints resume as before."""
    if len(key) <= MAX_SHARD_ID_CHARS:
        return key
    return "s3-key-sha256:" + hashlib.sha256(key.encode()).hexdigest()


class RangeReader(Protocol):
    """A finite range of records split into partitions that are read independently.

    A reader may also define ``parents(partition) -> Sequence[str]``: partitions that must be
    finished before ``partition`` is read (a Kinesis child shard's parents; see
    :class:`~consumers.replay.source.RangeSource`).
    """

    async def partitions(self) -> list[str]: ...

    def read(self, partition: str, after: str | None) -> AsyncIterator[tuple[Sequence[ConsumedRecord], str]]:
        """Batches of ``partition`` after the resume token ``after`` (``None``: from the start)."""
        ...


class S3ArchiveReader:
    """Backfill from the objects a Firehose sink delivered to S3 (one partition per object).

    Each object holds newline-delimited records in the layout of
    :func:`consumers.sinks.encoding.record_to_dict`, event id embedded; the resume token is
    the number of (non-empty) lines of the object already handed out, pinned to the content
    read: plus a number derived from the object's ETag times 10**15, still a decimal checkpoint.
    A resumed read of an object whose content changed since (a versioned or rewritten key)
    raises :class:`ArchiveObjectChangedError`: counting lines of other content would skip
    records never written.  A batch ends at
    ``batch_size`` records or ``batch_bytes`` of record data (payloads, partition keys and
    event ids), whichever comes first: a small,
    highly compressed object of large records made a 500-record batch of gigabytes.  Objects are
    streamed in chunks, never read whole, and decompressed as Firehose wrote them: GZIP
    (``CompressionFormat: GZIP``, the project's template; recognised by its magic bytes or
    a ``.gz`` suffix) or uncompressed.  An object in a format Firehose offers but the
    template does not use (ZIP, Snappy) is not guessed at: it is counted in
    :attr:`unreadable_objects` and skipped.

    A line that does not parse (bad JSON, nesting deep enough to exhaust the parser, not a
    record or a field of another type than the sink writes, longer than ``max_line_bytes``) is
    skipped and counted in :attr:`malformed`;
    it never stops the job.  Both counts are reported in the job's summary and make the
    ``shardline replay`` exit status 3; each object's skipped lines are logged once, by key,
    count and the first line numbers (1-based, among non-empty lines), never by content.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        batch_size: int = 500,
        batch_bytes: int = 4 * 1024 * 1024,
        chunk_bytes: int = 256 * 1024,
        max_line_bytes: int = MAX_ARCHIVE_LINE_BYTES,
    ) -> None:
        if batch_size < 1 or batch_bytes < 1 or chunk_bytes < 1 or max_line_bytes < 1:
            raise ConfigurationError("batch sizes, chunk_bytes and max_line_bytes must be positive")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.lstrip("/")
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.chunk_bytes = chunk_bytes
        self.max_line_bytes = max_line_bytes
        self.malformed = 0
        self.unreadable_objects = 0
        self._keys: dict[str, str] = {}  # partition id -> object key (they differ for long keys)

    def __repr__(self) -> str:
        return f"S3ArchiveReader(bucket={self.bucket!r}, prefix={self.prefix!r})"

    async def partitions(self) -> list[str]:
        """The objects under the prefix, in key order, each named by :func:`archive_partition_id`."""
        keys: list[str] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
        while True:
            response = await self.client.list_objects_v2(**kwargs)
            keys.extend(item["Key"] for item in response.get("Contents", []))
            if not response.get("IsTruncated"):
                break
            kwargs["ContinuationToken"] = response["NextContinuationToken"]
        keys.sort()
        self._keys = {archive_partition_id(key): key for key in keys}
        return list(self._keys)

    async def read(
        self, partition: str, after: str | None
    ) -> AsyncIterator[tuple[Sequence[ConsumedRecord], str]]:
        partition = self._keys.get(partition, partition)  # the object's key, from here on
        pinned, done = divmod(int(after), _LINES_PER_VERSION) if after is not None else (0, 0)
        try:
            with map_aws_errors("s3"):
                response = await self.client.get_object(Bucket=self.bucket, Key=partition)
        except ResourceNotFoundError as exc:
            if exc.code != "NoSuchKey":
                raise
            raise ArchiveObjectChangedError(
                f"archive object s3://{self.bucket}/{partition} was deleted after the job listed it"
            ) from None
        pin = _version_pin(response.get("ETag"))
        if pinned and done and pinned != pin:
            raise ArchiveObjectChangedError(
                f"archive object s3://{self.bucket}/{partition} changed after {done} of its lines were "
                "replayed; replay the new content under a new --name"
            )
        base = pin * _LINES_PER_VERSION
        malformed_before = self.malformed
        malformed_lines: list[int] = []  # the first few, for the warning that names them
        index = 0
        batch: list[ConsumedRecord] = []
        held = 0  # record bytes in ``batch``: a batch ends at batch_size records or batch_bytes
        async with response["Body"] as body:
            lines = _lines(_decompressed(body, partition, self.chunk_bytes), self.max_line_bytes)
            try:
                async for line in lines:
                    index += 1
                    if index <= done:
                        continue
                    record = self._parse(line)
                    if record is not None:
                        batch.append(record)
                        held += _held_bytes(record)
                    elif len(malformed_lines) < _LINES_NAMED:
                        malformed_lines.append(index)
                    if len(batch) >= self.batch_size or held >= self.batch_bytes:
                        yield batch, str(base + index)
                        batch = []
                        held = 0
            except _UnreadableObject as exc:
                self.unreadable_objects += 1
                _log.warning(
                    "archive object unreadable: the rest of it is skipped",
                    extra={"key": partition, "after_line": index, "reason": str(exc)},
                )
        if malformed_lines:
            _log.warning(
                "archive lines skipped",
                extra={
                    "key": partition,
                    "lines": self.malformed - malformed_before,
                    "line_numbers": ",".join(map(str, malformed_lines)),
                },
            )
        if batch or index > done:
            yield batch, str(base + index)

    def _parse(self, line: bytes | None) -> ConsumedRecord | None:
        if line is None:  # over max_line_bytes
            self.malformed += 1
            return None
        if _nesting_brackets(line) > _MAX_LINE_BRACKETS:
            # An archive line is a flat object (the payload is base64): one this bracketed is not
            # a record, and parsing it could only end in a RecursionError deep in the parser.
            self.malformed += 1
            return None
        try:
            return record_from_dict(json.loads(line))
        except (ValueError, SerializationError, RecursionError):
            self.malformed += 1
            return None


def _held_bytes(record: ConsumedRecord) -> int:
    """What a record read back holds: its data, partition key and event id.

    The key and the event id count too: a Kafka key or header has no 256-character bound, and
    with data alone counted, 500 lines of 900 KB keys (each under Firehose's record cap) made
    one batch of ~450 MB.
    """
    event_id = record.event_id
    return len(record.data) + len(record.partition_key) + (0 if event_id is None else len(event_id))


def _nesting_brackets(line: bytes) -> int:
    """Opening brackets of ``line`` outside its JSON strings: what the parser would nest into.

    Brackets inside strings are data: a partition key or an event id is the record writer's
    text (a Kafka key, a KPL user record's key, a Kafka header have no 256-character bound), and
    counted as nesting, a key of 600 ``{`` made its record's line unreadable on backfill.  The
    strings are stripped only for a line with that many brackets at all, so a plain line costs
    two counts.
    """
    count = line.count(b"[") + line.count(b"{")
    if count <= _MAX_LINE_BRACKETS:
        return count
    bare = _JSON_STRING.sub(b'""', line)
    return bare.count(b"[") + bare.count(b"{")


class _UnreadableObject(Exception):
    """An archive object in a compression this reader does not decode."""


async def _chunks(body: Any, size: int) -> AsyncIterator[bytes]:
    while True:
        chunk: bytes = await body.read(size)
        if not chunk:
            return
        yield chunk


async def _decompressed(body: Any, key: str, size: int) -> AsyncIterator[bytes]:
    """The object's bytes, gunzipped when it is GZIP (several concatenated members too)."""
    chunks = _chunks(body, size)
    head = b""
    async for chunk in chunks:
        head += chunk
        if len(head) >= len(_SNAPPY_FRAMED_MAGIC):
            break
    if head.startswith(_ZIP_MAGIC) or key.endswith(".zip"):
        raise _UnreadableObject("ZIP-compressed archive objects are not read; use GZIP")
    if head.startswith(_SNAPPY_FRAMED_MAGIC) or key.endswith(".snappy"):
        raise _UnreadableObject("Snappy-compressed archive objects are not read; use GZIP")
    if not (head.startswith(_GZIP_MAGIC) or key.endswith(".gz")):
        if head:
            yield head
        async for chunk in chunks:
            yield chunk
        return
    inflater = zlib.decompressobj(wbits=31)
    in_member = False

    def inflate(data: bytes) -> Iterator[bytes]:
        """Each step's output as it is made: at most ``size`` bytes at a time, so a small,
        highly compressed chunk (up to ~1,000 times its size inflated) is never held whole."""
        nonlocal inflater, in_member
        while data:
            in_member = True
            yield inflater.decompress(data, size)
            if inflater.eof:
                # Everything after the member is in unused_data.  unconsumed_tail may hold a
                # copy of it too (CPython keeps the input left after the stream's end there
                # when the call's input was itself a tail), so it is not added again.
                data = inflater.unused_data
                inflater = zlib.decompressobj(wbits=31)
                in_member = False
            else:
                data = inflater.unconsumed_tail

    try:
        for piece in inflate(head):
            yield piece
        async for chunk in chunks:
            for piece in inflate(chunk):
                yield piece
    except zlib.error as exc:
        raise _UnreadableObject(f"not valid GZIP ({exc})") from None
    if in_member:
        raise _UnreadableObject("GZIP data ends early (truncated object)")


async def _lines(data: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes | None]:
    """Non-empty lines; ``None`` stands for a line over ``max_bytes`` (never buffered whole)."""
    pending = bytearray()
    overlong = False
    async for chunk in data:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not overlong:
                    pending += chunk[start:]
                    if len(pending) > max_bytes:
                        overlong = True
                        pending.clear()
                break
            if overlong:
                yield None
                overlong = False
            else:
                pending += chunk[start:end]
                if len(pending) > max_bytes:
                    yield None
                elif pending.strip():
                    yield bytes(pending)
            pending.clear()
            start = end + 1
    if overlong:
        yield None
    elif pending.strip():
        yield bytes(pending)
