"""Records as JSON-ready dictionaries: the one wire form of files, dead letters and archives.

The file sink, the dead-letter destinations and the Firehose sink all write records as one
JSON object per line, and replay reads them back.  Keeping the layout in one module means
a record written by one can be read by the other.  Payloads are base64 so any bytes
survive; positions are spelled out field by field so they can be queried downstream.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from typing import Any, TypeGuard

from shardline.errors import SerializationError
from shardline.limits import HASH_KEY_MAX, INT64_MAX
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition, Position
from shardline.validation import is_decimal

__all__ = ["event_id", "position_from_dict", "position_to_dict", "record_from_dict", "record_to_dict"]

_SEQUENCE_DIGITS_MAX = 129
"""The most digits a Kinesis sequence number has (the API's pattern ``0|([1-9]\\d{0,128})``,
which the Lambda handler checks; the readers refuse more than 128)."""
_HASH_KEY_DIGITS_MAX = len(str(HASH_KEY_MAX))


def event_id(record: ConsumedRecord) -> str:
    """Deterministic id of a record, the same every time the record is read.

    The producer's event id when it set one and its MAC verified (the record's identity),
    else a digest of the position's identity, so downstream consumers of at-least-once
    destinations (Firehose) can deduplicate and an unsigned id cannot collide with another.
    """
    if record.event_id is not None and record.event_id_verified:
        return record.event_id
    return hashlib.sha256(record.position.identity.encode()).hexdigest()[:32]


def position_to_dict(position: Position) -> dict[str, Any]:
    if isinstance(position, KinesisPosition):
        return {
            "stream": position.stream,
            "shard_id": position.shard_id,
            "sequence_number": position.sequence_number,
            "sub_sequence_number": position.sub_sequence_number,
        }
    return {"topic": position.topic, "partition": position.partition_id, "offset": position.offset}


def position_from_dict(data: dict[str, Any]) -> Position:
    """Inverse of :func:`position_to_dict`; raises ``SerializationError`` unless every field has
    the type written there (text, a decimal sequence number, whole numbers from 0).

    Nothing is coerced: the JSON parser takes ``Infinity`` for a number (``int()`` of it raised
    OverflowError out of the archive reader), and ``str()``/``int()`` made positions no stream
    hands out (a sequence number ``"abc"``, a sub-sequence number ``-1`` or ``true``) that failed
    later, in a sink.
    """
    if not isinstance(data, dict):
        raise SerializationError(f"not a record position: a JSON {type(data).__name__}")
    if "sequence_number" in data:
        stream, shard_id = data.get("stream"), data.get("shard_id")
        sequence, sub = data["sequence_number"], data.get("sub_sequence_number", 0)
        if (
            type(stream) is not str
            or type(shard_id) is not str
            or not is_decimal(sequence)
            or len(sequence) > _SEQUENCE_DIGITS_MAX
            or not _is_count(sub)
        ):
            raise SerializationError("not a record position: a Kinesis field of another type")
        return KinesisPosition(stream, shard_id, sequence, sub)
    topic, partition, offset = data.get("topic"), data.get("partition"), data.get("offset")
    if type(topic) is not str or not _is_count(partition) or not _is_count(offset):
        raise SerializationError("not a record position: a Kafka field of another type")
    return KafkaPosition(topic, partition, offset)


def _is_count(value: object) -> TypeGuard[int]:
    """A JSON integer in 0..2**63-1 (not a bool, a float or text)."""
    return type(value) is int and 0 <= value <= INT64_MAX


def _is_hash_key(value: object) -> TypeGuard[str]:
    """An explicit hash key as :func:`record_to_dict` writes it: decimal text in 0..2**128-1."""
    return is_decimal(value) and len(value) <= _HASH_KEY_DIGITS_MAX and int(value) <= HASH_KEY_MAX


def record_to_dict(record: ConsumedRecord) -> dict[str, Any]:
    """Everything needed to rebuild the record, payload base64-encoded.

    ``event_id`` is the deterministic downstream deduplication id; ``source_event_id`` is
    the producer's own id (or null), kept apart so a record read back has the same
    identity as when it was first consumed.
    """
    out: dict[str, Any] = {
        "id": record.identity,
        "event_id": event_id(record),
        "source_event_id": record.event_id,
        "partition_key": record.partition_key,
        "position": position_to_dict(record.position),
        "data": base64.b64encode(record.data).decode("ascii"),
    }
    if record.arrival_time is not None:
        out["arrival_time"] = record.arrival_time.isoformat()
    if record.explicit_hash_key is not None:
        out["explicit_hash_key"] = str(record.explicit_hash_key)
    return out


def record_from_dict(data: dict[str, Any]) -> ConsumedRecord:
    """Inverse of :func:`record_to_dict`; raises ``SerializationError`` on malformed input.

    The producer's id is the identity again exactly when it was when written: these lines
    come from Shardline's own sinks and dead letters, and a signed id is written as ``id``,
    ``event_id`` and ``source_event_id`` alike.  ``id`` alone does not tell: an unsigned id
    that spells the record's own position (a Kafka offset is easy to foresee) equals ``id``
    too, and read back as signed it changed the record's ``event_id`` (the downstream
    deduplication id) on every backfill.  Its ``event_id`` is a digest of the position, never
    the position itself, so the three agree only for a signed id.  Fields must have the types
    written here (see :func:`position_from_dict`): an event id of another type, spelt three
    times, was trusted as the record's identity, and a naive arrival time moved with the reading
    machine's time zone.
    """
    if not isinstance(data, dict):
        raise SerializationError(f"not a serialised record: a JSON {type(data).__name__}")
    source_event_id = data.get("source_event_id")
    partition_key = data.get("partition_key", "")
    encoded = data.get("data")
    arrival = data.get("arrival_time")
    hash_key = data.get("explicit_hash_key")
    if (
        (source_event_id is not None and type(source_event_id) is not str)
        or type(partition_key) is not str
        or type(encoded) is not str
        or (arrival is not None and type(arrival) is not str)
        or (hash_key is not None and not _is_hash_key(hash_key))
    ):
        raise SerializationError("not a serialised record: a field of another type")
    try:
        payload = base64.b64decode(encoded, validate=True)
        arrival_time = datetime.fromisoformat(arrival) if arrival else None
    except (ValueError, binascii.Error) as exc:
        raise SerializationError(f"not a serialised record: {type(exc).__name__}") from exc
    if arrival_time is not None and arrival_time.tzinfo is None:
        raise SerializationError("not a serialised record: an arrival time without its time zone")
    if "position" not in data:
        raise SerializationError("not a serialised record: no position")
    return ConsumedRecord(
        data=payload,
        partition_key=partition_key,
        position=position_from_dict(data["position"]),
        arrival_time=arrival_time,
        explicit_hash_key=int(hash_key) if hash_key is not None else None,
        event_id=source_event_id,
        event_id_verified=source_event_id is not None
        and data.get("id") == source_event_id
        and data.get("event_id") == source_event_id,
    )
