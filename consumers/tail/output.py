"""How ``shardline tail`` prints a record: one JSON object per line, or one readable line.

Payloads are printed as UTF-8 text when they decode as such (``--payload auto``), else as
base64; ``"encoding"`` in the JSON says which.  Keys, positions and arrival times come from the
record itself; nothing is inferred.

Whoever writes to the stream chooses those bytes, and they end up on an operator's terminal:
control characters are printed escaped (:mod:`shardline.printable`), ``\x1b`` in a readable
line and ``\u001b`` in JSON, in the payload and in the key alike.  So are the bidirectional
overrides and isolates, which would reorder what follows them on a terminal that lays out
bidirectional text.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from shardline.printable import json_printable, printable
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition

__all__ = ["PAYLOAD_MODES", "as_json", "as_text", "payload"]

PAYLOAD_MODES = ("auto", "utf-8", "base64")


def payload(data: bytes, mode: str) -> tuple[str, str]:
    """``(text, encoding)``: the payload as UTF-8 text when possible (or asked), else base64."""
    if mode != "base64":
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            if mode == "utf-8":
                return data.decode("utf-8", errors="replace"), "utf-8"
    return base64.b64encode(data).decode("ascii"), "base64"


def _fields(record: ConsumedRecord) -> dict[str, Any]:
    position = record.position
    fields: dict[str, Any] = {"key": record.partition_key}
    if isinstance(position, KinesisPosition):
        fields.update(
            shard=position.shard_id,
            sequence=position.sequence_number,
            sub_sequence=position.sub_sequence_number,
        )
    elif isinstance(position, KafkaPosition):
        fields.update(topic=position.topic, partition=position.partition_id, offset=position.offset)
    fields["arrival"] = (
        record.arrival_time.isoformat(timespec="milliseconds") if record.arrival_time is not None else None
    )
    if record.event_id is not None:
        fields["event_id"] = record.event_id
    return fields


def as_json(record: ConsumedRecord, mode: str = "auto", *, ascii_only: bool = False) -> str:
    """One JSON object: key, position fields, arrival, payload and its encoding.

    ``ascii_only`` escapes every non-ASCII character (``\\u20ac``), for an output that cannot
    encode them all (a Latin-1 terminal); the line parses to the same value either way.
    """
    fields = _fields(record)
    fields["payload"], fields["encoding"] = payload(record.data, mode)
    return json_printable(json.dumps(fields, ensure_ascii=ascii_only, separators=(",", ":")))


def as_text(record: ConsumedRecord, mode: str = "auto") -> str:
    """``ARRIVAL  SHARD SEQUENCE[:SUB]  key=KEY  PAYLOAD`` (Kafka: ``TOPIC/PARTITION@OFFSET``)."""
    position = record.position
    if isinstance(position, KinesisPosition):
        where = f"{position.shard_id} {position.sequence_number}"
        if position.sub_sequence_number:
            where += f":{position.sub_sequence_number}"
    elif isinstance(position, KafkaPosition):
        where = f"{position.topic}/{position.partition_id}@{position.offset}"
    else:  # pragma: no cover - every source has one of the two positions
        where = position.identity
    arrival = record.arrival_time.isoformat(timespec="milliseconds") if record.arrival_time else "-"
    text, encoding = payload(record.data, mode)
    shown = printable(text.replace("\n", "\\n")) if encoding == "utf-8" else f"base64:{text}"
    return f"{arrival}  {where}  key={printable(record.partition_key)}  {shown}"
