"""The S3 archive reader streams objects, gunzips them, and survives any line."""

from __future__ import annotations

import gzip
import json

from consumers.replay.ranges import S3ArchiveReader
from consumers.sinks.firehose import encode_line
from shardline.records import ConsumedRecord, KinesisPosition
from tests.unit.consumers.archive_doubles import ArchiveBucket


def _lines(count: int, start: int = 0) -> bytes:
    return b"".join(
        encode_line(
            ConsumedRecord(
                json.dumps({"i": i}).encode(), "k", KinesisPosition("s", "shardId-000000000000", str(i))
            )
        )
        for i in range(start, start + count)
    )


async def _read_all(reader: S3ArchiveReader, key: str, after: str | None = None) -> tuple[list[int], str]:
    seen: list[int] = []
    last = "0"
    async for records, token in reader.read(key, after):
        seen.extend(json.loads(r.data)["i"] for r in records)
        last = token
    return seen, last


async def test_objects_are_streamed_in_chunks() -> None:
    data = _lines(2000)
    s3 = ArchiveBucket({"o": data}, etags=False)
    reader = S3ArchiveReader(s3, "b", chunk_bytes=4096)
    seen, token = await _read_all(reader, "o")
    assert seen == list(range(2000)) and token == "2000"
    body = s3.bodies[0]
    assert len(body.reads) > len(data) // 4096 and max(body.reads) == 4096


async def test_gzip_by_magic_or_suffix_and_concatenated_members() -> None:
    members = gzip.compress(_lines(50)) + gzip.compress(_lines(50, 50))
    s3 = ArchiveBucket({"no-suffix": members, "x.gz": gzip.compress(_lines(10))}, etags=False)
    reader = S3ArchiveReader(s3, "b", chunk_bytes=7)  # chunks cut through headers and lines
    assert (await _read_all(reader, "no-suffix"))[0] == list(range(100))
    assert (await _read_all(reader, "x.gz"))[0] == list(range(10))
    assert reader.malformed == 0


async def test_resume_token_skips_lines_already_handed_out() -> None:
    s3 = ArchiveBucket({"o.gz": gzip.compress(_lines(25))}, etags=False)
    reader = S3ArchiveReader(s3, "b", batch_size=10)
    seen, token = await _read_all(reader, "o.gz", after="10")
    assert seen == list(range(10, 25)) and token == "25"


async def test_overlong_and_poison_lines_are_counted_not_fatal() -> None:
    overlong = b'{"data": "' + b"A" * 5000 + b'"}\n'
    nested = b"{" * 1 + b'"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    data = _lines(3) + overlong + nested + b"\xff\xfe\n" + b"null\n" + _lines(3, 3)
    reader = S3ArchiveReader(
        ArchiveBucket({"o": data}, etags=False), "b", chunk_bytes=64, max_line_bytes=1024
    )
    seen, token = await _read_all(reader, "o")
    assert seen == list(range(6))
    assert reader.malformed == 4 and token == "10"


async def test_corrupt_gzip_counts_an_unreadable_object() -> None:
    reader = S3ArchiveReader(
        ArchiveBucket({"o.gz": gzip.compress(_lines(5))[:-12] + b"garbage!" * 3}, etags=False), "b"
    )
    await _read_all(reader, "o.gz")
    assert reader.unreadable_objects == 1


async def test_a_truncated_gzip_object_is_reported_after_its_readable_lines() -> None:
    reader = S3ArchiveReader(ArchiveBucket({"o.gz": gzip.compress(_lines(200))[:-40]}, etags=False), "b")
    seen, _ = await _read_all(reader, "o.gz")
    assert seen == list(range(len(seen))) and len(seen) > 150
    assert reader.unreadable_objects == 1


async def test_members_after_a_large_first_member_are_read_once() -> None:
    """A member ending inside a call whose input was the previous call's unconsumed tail:
    CPython leaves the input after the member in both unused_data and unconsumed_tail, and
    adding both read the next member twice (its records duplicated)."""
    first = gzip.compress(_lines(400))  # inflates to many 4 KiB steps
    s3 = ArchiveBucket(
        {"o.gz": first + gzip.compress(_lines(50, 400)) + gzip.compress(_lines(5, 450))}, etags=False
    )
    reader = S3ArchiveReader(s3, "b", chunk_bytes=4096)
    seen, token = await _read_all(reader, "o.gz")
    assert seen == list(range(455)) and token == "455"
    assert reader.malformed == 0 and reader.unreadable_objects == 0


async def test_a_gzip_bomb_is_inflated_piece_by_piece() -> None:
    """128 MiB of zeros compress to ~130 KB, one chunk read: its output is handed on a piece
    (chunk_bytes) at a time, so memory stays near the line limit instead of the whole
    inflated chunk."""
    import tracemalloc

    bomb = gzip.compress(b"\0" * (128 * 1024 * 1024) + b"\n", compresslevel=9)
    assert len(bomb) < 256 * 1024  # one read of the default chunk size
    reader = S3ArchiveReader(ArchiveBucket({"o.gz": bomb + gzip.compress(_lines(2))}, etags=False), "b")
    tracemalloc.start()
    try:
        seen, _ = await _read_all(reader, "o.gz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024
    assert seen == [0, 1] and reader.malformed == 1  # the zeros: one overlong line
