"""An archive line whose fields have other types than the Firehose sink writes is not a record.

Python's JSON parser takes ``Infinity`` and ``NaN`` for numbers, and the reader coerced every
field with ``str()`` and ``int()``: an infinite sub-sequence number, partition, offset or
explicit hash key raised OverflowError out of the reader and stopped the backfill with a
traceback, and the coercions made records no stream hands out (a sequence number ``"abc"``, a
sub-sequence number ``-1`` or ``true``, a naive arrival time, an event id of a list trusted as
the record's identity) that failed later, in the sink, or keyed items by something that is not
text.  Each such line is skipped and counted; the lines around it read as before.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.replay.ranges import S3ArchiveReader
from consumers.sinks.firehose import encode_line
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition
from tests.unit.consumers.archive_doubles import ArchiveBucket

_KINESIS = ConsumedRecord(b"x", "k", KinesisPosition("s", "shardId-000000000000", "7", 2))
_KAFKA = ConsumedRecord(b"y", "k", KafkaPosition("t", 0, 9))


def _fields(record: ConsumedRecord) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(encode_line(record))
    return fields


def _with(record: ConsumedRecord, **changes: Any) -> bytes:
    fields = _fields(record)
    fields.update(changes)
    return json.dumps(fields).encode() + b"\n"


def _with_position(record: ConsumedRecord, **changes: Any) -> bytes:
    fields = _fields(record)
    fields["position"] = {**fields["position"], **changes}
    return json.dumps(fields).encode() + b"\n"


_INFINITY = float("inf")

MISTYPED = {
    "infinite sub-sequence number": _with_position(_KINESIS, sub_sequence_number=_INFINITY),
    "infinite explicit hash key": _with(_KINESIS, explicit_hash_key=_INFINITY),
    "infinite Kafka partition": _with_position(_KAFKA, partition=_INFINITY),
    "infinite Kafka offset": _with_position(_KAFKA, offset=-_INFINITY),
    "sub-sequence number true": _with_position(_KINESIS, sub_sequence_number=True),
    "fractional sub-sequence number": _with_position(_KINESIS, sub_sequence_number=1.5),
    "negative sub-sequence number": _with_position(_KINESIS, sub_sequence_number=-1),
    "sub-sequence number as text": _with_position(_KINESIS, sub_sequence_number="2"),
    "sequence number not decimal": _with_position(_KINESIS, sequence_number="abc"),
    "sequence number a number": _with_position(_KINESIS, sequence_number=7),
    "sequence number of 130 digits": _with_position(_KINESIS, sequence_number="9" * 130),
    "stream a number": _with_position(_KINESIS, stream=5),
    "shard a list": _with_position(_KINESIS, shard_id=["shardId-000000000000"]),
    "negative Kafka offset": _with_position(_KAFKA, offset=-1),
    "Kafka partition as text": _with_position(_KAFKA, partition="0"),
    "topic null": _with_position(_KAFKA, topic=None),
    "position a list": _with(_KINESIS, position=["sequence_number"]),
    "event id a list, spelt three times": _with(_KINESIS, id=["e"], event_id=["e"], source_event_id=["e"]),
    "event id a number, spelt three times": _with(_KINESIS, id=5, event_id=5, source_event_id=5),
    "partition key a number": _with(_KINESIS, partition_key=5),
    "naive arrival time": _with(_KINESIS, arrival_time="2024-01-01T00:00:00"),
    "arrival time a number": _with(_KINESIS, arrival_time=1700000000),
    "explicit hash key a number": _with(_KINESIS, explicit_hash_key=5),
    "explicit hash key negative": _with(_KINESIS, explicit_hash_key="-5"),
    "explicit hash key past 2**128 - 1": _with(_KINESIS, explicit_hash_key=str(2**128)),
    "explicit hash key with spaces": _with(_KINESIS, explicit_hash_key=" 5 "),
}


@pytest.mark.parametrize("line", MISTYPED.values(), ids=MISTYPED.keys())
async def test_a_mistyped_line_is_skipped_and_counted_and_the_job_goes_on(line: bytes) -> None:
    body = encode_line(_KINESIS) + line + encode_line(_KAFKA)
    reader = S3ArchiveReader(ArchiveBucket({"a/0": body}), "b", "a/")
    [partition] = await reader.partitions()

    read = [(record, token) async for batch, token in reader.read(partition, None) for record in batch]

    assert [record.position for record, _ in read] == [_KINESIS.position, _KAFKA.position]
    assert reader.malformed == 1


async def test_lines_as_the_sink_writes_them_still_read_back_whole() -> None:
    arrived = ConsumedRecord(
        b"z",
        "k",
        KinesisPosition("s", "shardId-000000000000", "8", 0),
        arrival_time=datetime(2024, 1, 1, tzinfo=UTC),
        explicit_hash_key=2**128 - 1,
        event_id="evt",
        event_id_verified=True,
    )
    older = _fields(_KINESIS)
    del older["position"]["sub_sequence_number"], older["partition_key"]  # fields a reader defaults
    longest = ConsumedRecord(b"w", "k", KinesisPosition("s", "shardId-000000000000", "9" * 129, 3))
    body = encode_line(arrived) + json.dumps(older).encode() + b"\n" + encode_line(longest)
    reader = S3ArchiveReader(ArchiveBucket({"a/0": body}), "b", "a/")
    [partition] = await reader.partitions()

    read = [record async for batch, _ in reader.read(partition, None) for record in batch]

    assert reader.malformed == 0
    assert encode_line(read[0]) == encode_line(arrived)
    assert read[1].position == KinesisPosition("s", "shardId-000000000000", "7", 0)
    assert read[1].partition_key == ""
    assert read[2].position == longest.position  # the API's pattern allows 129 digits
