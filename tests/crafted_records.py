"""Consumed records whose every field is chosen to break a line-oriented archive, shared by the
unit and wire tests of the Firehose line and its backfill.

Whoever writes to a stream chooses the payload, the partition key (a Kafka key, a KPL user
record's key: no 256-character bound) and the event id (a Kafka header, a KPL tag; unsigned
unless its MAC verifies).  Positions are the stream service's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from consumers.sinks.encoding import event_id
from consumers.sinks.firehose import encode_line
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition

__all__ = ["archived_fields", "crafted_records"]

SHARD = "shardId-000000000000"


def _kinesis(sequence: int, data: bytes = b"x", key: str = "k", **kwargs: Any) -> ConsumedRecord:
    return ConsumedRecord(data, key, KinesisPosition("s", SHARD, str(sequence)), **kwargs)


def _kafka(offset: int, data: bytes = b"x", key: str = "k", **kwargs: Any) -> ConsumedRecord:
    return ConsumedRecord(data, key, KafkaPosition("t", 0, offset), **kwargs)


def crafted_records() -> list[ConsumedRecord]:
    """One record per trick, each at its own position."""
    neighbour = _kinesis(1, b'{"a": 1}')
    return [
        neighbour,
        _kinesis(2, b"a\nb\r\nc\x00d\xff\xfe\xc3"),
        _kinesis(3, encode_line(neighbour)),  # a payload that is another record's archive line
        _kinesis(4, encode_line(neighbour) * 2),
        _kinesis(5, key="a\nb\rc\u2028d\x00"),
        _kafka(6, key=b"\xff\xfeabc".decode("utf-8", "surrogateescape")),  # a non-UTF-8 Kafka key
        _kafka(7, key="{" * 600),
        _kafka(8, key="[" * 400 + "{" * 400),
        _kafka(9, event_id="x\ny"),
        _kafka(10, event_id="{" * 600),
        _kafka(11, event_id="t/0/11"),  # unsigned, spelling its own position's identity
        _kafka(12, event_id=f"s/{SHARD}/1/0"),  # unsigned, naming the neighbour
        _kinesis(
            13, event_id="evt-13", event_id_verified=True, arrival_time=datetime(2024, 1, 1, tzinfo=UTC)
        ),
        _kinesis(14, key="k" * 100_000, explicit_hash_key=2**127),
        _kafka(15, event_id="e" * 200_000),
        _kafka(16, key='"' * 600 + "\\" * 3 + "}" * 600),
    ]


def archived_fields(record: ConsumedRecord) -> tuple[object, ...]:
    """What an archive line keeps of a record (not its Kafka headers), and what it derives."""
    return (
        record.data,
        record.partition_key,
        record.position,
        record.arrival_time,
        record.explicit_hash_key,
        record.event_id,
        record.event_id_verified,
        record.identity,
        event_id(record),
    )
