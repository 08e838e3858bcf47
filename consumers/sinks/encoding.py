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
from typing import Any

from shardline.errors import SerializationError
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition, Position

__all__ = ["event_id", "position_from_dict", "position_to_dict", "record_from_dict", "record_to_dict"]


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
    try:
        if "sequence_number" in data:
            return KinesisPosition(
                stream=str(data["stream"]),
                shard_id=str(data["shard_id"]),
                sequence_number=str(data["sequence_number"]),
                sub_sequence_number=int(data.get("sub_sequence_number", 0)),
            )
        return KafkaPosition(str(data["topic"]), int(data["partition"]), int(data["offset"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise SerializationError(f"not a record position: {type(exc).__name__}") from exc


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
    the position itself, so the three agree only for a signed id.
    """
    if not isinstance(data, dict):
        raise SerializationError(f"not a serialised record: a JSON {type(data).__name__}")
    try:
        source_event_id = data.get("source_event_id")
        payload = base64.b64decode(data["data"], validate=True)
        arrival = data.get("arrival_time")
        hash_key = data.get("explicit_hash_key")
        return ConsumedRecord(
            data=payload,
            partition_key=str(data.get("partition_key", "")),
            position=position_from_dict(data["position"]),
            arrival_time=datetime.fromisoformat(arrival) if arrival else None,
            explicit_hash_key=int(hash_key) if hash_key is not None else None,
            event_id=source_event_id,
            event_id_verified=source_event_id is not None
            and data.get("id") == source_event_id
            and data.get("event_id") == source_event_id,
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise SerializationError(f"not a serialised record: {type(exc).__name__}") from exc
