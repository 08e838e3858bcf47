"""Whatever bytes a record carries, its archive line reads back as that record, once.

Every field of a consumed record is chosen by whoever wrote it to the stream: the payload, the
partition key (a Kafka key, or a KPL user record's key, has no 256-character bound) and the
event id (a Kafka header or a KPL tag, unsigned unless its MAC verifies).  The Firehose line
must neither let those bytes forge a second line nor make the reader take the line for
something else: a key of brackets read as deep nesting, or an unsigned event id read as a
signed one.
"""

from __future__ import annotations

import pytest

from consumers.replay.ranges import S3ArchiveReader
from consumers.sinks.encoding import event_id
from consumers.sinks.firehose import encode_line
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition, Position
from tests.crafted_records import archived_fields, crafted_records
from tests.unit.consumers.archive_doubles import ArchiveBucket

_SHARD = "shardId-000000000000"


async def _read_back(body: bytes, **options: int) -> tuple[list[ConsumedRecord], S3ArchiveReader]:
    reader = S3ArchiveReader(ArchiveBucket({"a/0": body}), "b", "a/", **options)
    [partition] = await reader.partitions()
    records = [record async for batch, _ in reader.read(partition, None) for record in batch]
    return records, reader


@pytest.mark.parametrize("chunk_bytes", [7, 256 * 1024])
async def test_every_crafted_record_reads_back_as_itself_once(chunk_bytes: int) -> None:
    records = crafted_records()
    body = b"".join(encode_line(record) for record in records)
    assert body.count(b"\n") == len(records)  # one line per record, whatever its bytes

    read, reader = await _read_back(body, chunk_bytes=chunk_bytes)

    assert reader.malformed == 0
    assert [archived_fields(r) for r in read] == [archived_fields(r) for r in records]
    assert [encode_line(r) for r in read] == [encode_line(r) for r in records]  # replayed: the same line


async def test_a_key_of_brackets_is_data_while_nesting_outside_strings_is_still_refused() -> None:
    keyed = ConsumedRecord(b"x", "{" * 600, KafkaPosition("t", 0, 7))
    deep = b'{"partition_key":"' + b"{" * 600 + b'","x":' + b"[" * 600 + b"]" * 600 + b"}\n"
    escaped_quotes = b'{"k":"' + b'\\"' * 600 + b'",' + b"[" * 600 + b"\n"  # the quotes stay in the string
    after = ConsumedRecord(b"x", "k", KafkaPosition("t", 0, 8))
    body = encode_line(keyed) + deep + escaped_quotes + encode_line(after)

    read, reader = await _read_back(body)

    assert [r.position for r in read] == [keyed.position, after.position]
    assert reader.malformed == 2


@pytest.mark.parametrize(
    ("position", "verified"),
    [
        (KafkaPosition("t", 0, 11), False),
        (KafkaPosition("t", 0, 11), True),
        (KinesisPosition("s", _SHARD, "11"), False),
    ],
)
async def test_an_event_id_spelling_its_own_position_keeps_its_signature_state(
    position: Position, verified: bool
) -> None:
    record = ConsumedRecord(b"x", "k", position, event_id=position.identity, event_id_verified=verified)

    [read], _ = await _read_back(encode_line(record))

    assert read.event_id_verified is verified
    assert event_id(read) == event_id(record)  # the downstream deduplication id of the first write
