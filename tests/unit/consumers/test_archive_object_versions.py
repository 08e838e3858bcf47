"""A resumed archive read refuses an object whose content changed since its lines were counted.

The resume token of an archive object counts the lines already handed out.  On a versioned
bucket (or any rewrite of a key) the object under the same key can hold other content when
a crashed job is run again; counting lines of the new content skipped records that were
never written, and the job reported success.  An object deleted after the job listed it
failed the job with S3's NoSuchKey, which does not say which object.
"""

from __future__ import annotations

import json

import pytest

from consumers.replay.ranges import ArchiveObjectChangedError, S3ArchiveReader
from consumers.sinks.firehose import encode_line
from shardline.records import ConsumedRecord, KinesisPosition
from tests.unit.consumers.archive_doubles import ArchiveBucket


def _lines(start: int, count: int) -> bytes:
    return b"".join(
        encode_line(
            ConsumedRecord(json.dumps({"i": i}).encode(), "k", KinesisPosition("s", "shardId-0", str(i)))
        )
        for i in range(start, start + count)
    )


async def _first_batch(reader: S3ArchiveReader, key: str) -> tuple[list[int], str]:
    async for records, token in reader.read(key, None):
        return [json.loads(record.data)["i"] for record in records], token
    raise AssertionError("no batch")


async def _rest(reader: S3ArchiveReader, key: str, after: str) -> list[int]:
    return [json.loads(r.data)["i"] async for records, _ in reader.read(key, after) for r in records]


async def test_a_resumed_read_of_replaced_content_raises_instead_of_skipping_its_first_lines() -> None:
    bucket = ArchiveBucket()
    bucket.objects["o"] = _lines(0, 10)
    reader = S3ArchiveReader(bucket, "b", batch_size=4)
    first, token = await _first_batch(reader, "o")
    assert first == [0, 1, 2, 3]
    bucket.objects["o"] = _lines(100, 10)  # a new version under the same key
    with pytest.raises(ArchiveObjectChangedError, match=r"s3://b/o changed after 4 of its lines"):
        await _rest(reader, "o", token)


async def test_a_resumed_read_of_the_same_content_goes_on_after_the_checkpoint() -> None:
    bucket = ArchiveBucket()
    bucket.objects["o"] = _lines(0, 10)
    reader = S3ArchiveReader(bucket, "b", batch_size=4)
    _, token = await _first_batch(reader, "o")
    assert await _rest(reader, "o", token) == list(range(4, 10))


async def test_a_line_count_checkpointed_without_a_pin_still_resumes() -> None:
    bucket = ArchiveBucket()
    bucket.objects["o"] = _lines(0, 10)
    assert await _rest(S3ArchiveReader(bucket, "b"), "o", "4") == list(range(4, 10))


async def test_an_object_deleted_after_listing_is_named_in_the_error() -> None:
    reader = S3ArchiveReader(ArchiveBucket(), "b")
    with pytest.raises(ArchiveObjectChangedError, match=r"s3://b/2024/gone\.gz was deleted"):
        await _rest(reader, "2024/gone.gz", "0")
