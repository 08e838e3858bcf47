"""Turning confluent-kafka messages into Shardline's consumed records and source batches.

Shared by the group consumer and the bounded replay source; pure apart from reading the
messages, so it is unit-testable with simple doubles.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from consumers.source import SourceBatch
from shardline.kafka_config import EVENT_ID_HEADER
from shardline.records import ConsumedRecord, KafkaPosition

__all__ = ["partition_name", "to_batches", "to_record"]

_TIMESTAMP_NOT_AVAILABLE = 0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def partition_name(topic: str, partition: int) -> str:
    """The pipeline's name of a Kafka partition (the same as ``KafkaPosition.partition``)."""
    return f"{topic}/{partition}"


def to_record(msg: Any, *, with_timestamp: bool = True) -> ConsumedRecord:
    """One message as a :class:`ConsumedRecord`; the key becomes the partition key.

    Keys that are not UTF-8 survive through ``surrogateescape`` (``.encode('utf-8',
    'surrogateescape')`` gives the original bytes back).  A tombstone's value is ``b""``.
    """
    key = msg.key()
    if key is None:
        key_text = ""
    elif type(key) is bytes:
        key_text = key.decode("utf-8", "surrogateescape")
    else:
        key_text = str(key)
    value = msg.value()
    headers = msg.headers()
    header_map: dict[str, bytes] | None = None
    event_id: str | None = None
    if headers:
        header_map = {name: header_value or b"" for name, header_value in headers}
        raw_id = header_map.get(EVENT_ID_HEADER)
        if raw_id is not None:
            event_id = raw_id.decode("utf-8", "replace")
    arrival: datetime | None = None
    if with_timestamp:
        kind, millis = msg.timestamp()
        if kind != _TIMESTAMP_NOT_AVAILABLE:
            arrival = datetime.fromtimestamp(millis / 1000.0, UTC)
    return ConsumedRecord(
        value if value is not None else b"",
        key_text,
        KafkaPosition(msg.topic(), msg.partition(), msg.offset()),
        arrival,
        None,
        event_id,
        header_map,
    )


def to_batches(messages: Iterable[Any], *, with_timestamp: bool = True) -> list[SourceBatch]:
    """Group messages (already error-free) into one batch per partition, keeping their order."""
    grouped: dict[tuple[str, int], list[ConsumedRecord]] = {}
    for msg in messages:
        record = to_record(msg, with_timestamp=with_timestamp)
        position = record.position
        assert isinstance(position, KafkaPosition)
        slot = grouped.get((position.topic, position.partition_id))
        if slot is None:
            grouped[(position.topic, position.partition_id)] = [record]
        else:
            slot.append(record)
    return [
        SourceBatch(partition=partition_name(topic, partition), records=records)
        for (topic, partition), records in grouped.items()
    ]


def last_offsets(batches: Sequence[SourceBatch]) -> dict[str, int]:
    """The highest offset per partition in ``batches`` (for bookkeeping of what was read)."""
    offsets: dict[str, int] = {}
    for batch in batches:
        if batch.records:
            position = batch.records[-1].position
            assert isinstance(position, KafkaPosition)
            offsets[batch.partition] = position.offset
    return offsets
