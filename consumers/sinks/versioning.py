"""An int64 version for a record, derived from its position, so replays upsert the same way.

Timestream's ``Version`` and DynamoDB's guarded writes both need a number that is the
same every time a record is read (so a replay writes the same version and is absorbed) and
that grows along a partition (so an older replayed record never overwrites a newer one).

- Kafka: the offset plus one.
- Kinesis sequence numbers below 2**53 (what emulators hand out): the sequence number
  times 1024 plus the KPL sub-sequence number.
- Real Kinesis sequence numbers are ~186-bit and cannot be packed into an int64 while
  staying monotonic, so the version is the record's approximate arrival time in
  milliseconds (non-decreasing along a shard) times 1024 plus the sub-sequence number.
- Without an arrival time the version is 1: replays are still absorbed, but a changed value
  for the same point cannot win; name a ``version_field`` in the mapping in that case.

Arrival times are milliseconds, and plain records of one PutRecords request (or any two in
the same millisecond) share one: their versions tie although the later one is newer.  Where a
sink can compare a second value, :func:`position_tiebreak` orders such records by their
sequence numbers (the DynamoDB sink's guarded writes do).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from shardline.errors import ValidationError
from shardline.limits import INT64_MAX
from shardline.records import ConsumedRecord, KafkaPosition

__all__ = ["position_tiebreak", "position_version", "record_version"]

_SUB_SLOTS = 1024
_SEQUENCE_DIGITS = 129
"""The longest Kinesis sequence number (its API's pattern ``0|([1-9]\\d{0,128})``)."""
_SUB_DIGITS = 10
_EXACT_DIGITS = len(str(2**53))
"""Sequence numbers longer than this are past 2**53, where versions come from arrival times."""


def position_version(record: ConsumedRecord) -> int:
    """The record's version from its position (see the module documentation)."""
    position = record.position
    if isinstance(position, KafkaPosition):
        return position.offset + 1
    sub = min(position.sub_sequence_number, _SUB_SLOTS - 1)
    sequence = int(position.sequence_number)
    if sequence < 2**53:
        return sequence * _SUB_SLOTS + sub
    if record.arrival_time is not None:
        return int(record.arrival_time.timestamp() * 1000) * _SUB_SLOTS + sub
    return 1


def record_version(record: ConsumedRecord, payload: Mapping[str, Any], version_field: str | None) -> int:
    """The payload's ``version_field`` when named (a poison record if malformed), else the position's."""
    if version_field is None:
        return position_version(record)
    value = payload.get(version_field)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal) or not math.isfinite(value):
        raise ValidationError(f"version field {version_field!r} missing or not a number")
    # A whole number, in whichever type the sink's JSON parser gave it (the DynamoDB sink reads
    # numbers as Decimal: every version was refused as "not a number" there).  A fraction is
    # refused in every sink: truncated, as Timestream's did, two updates within one unit
    # tied and the later one was dropped as a duplicate.
    if value != int(value):
        raise ValidationError(
            f"version field {version_field!r} is not a whole number: scale it (milliseconds, not seconds)"
        )
    version = int(value)
    if not 0 <= version <= INT64_MAX:
        raise ValidationError(f"version field {version_field!r} outside 0..2**63-1")
    return version


def position_tiebreak(record: ConsumedRecord) -> str | None:
    """Among records whose :func:`position_version` ties, a text that orders them as the shard
    did; ``None`` where the version alone orders every record (Kafka offsets, the exact
    versions of small sequence numbers).

    It is the sequence number and sub-sequence number, zero-padded to fixed widths, so that
    comparing the texts (what DynamoDB does with strings) compares the positions.  Only
    records of one shard are ordered by it; two shards' records in one millisecond for one key
    (a key moved by a reshard) keep an order that is arbitrary, but the same on every replay.
    """
    position = record.position
    if isinstance(position, KafkaPosition):
        return None
    sequence = position.sequence_number
    # digits before value: a real sequence number (56 digits) is past 2**53 without parsing it
    small = len(sequence) <= _EXACT_DIGITS and int(sequence) < 2**53
    if small or len(sequence) > _SEQUENCE_DIGITS or record.arrival_time is None:
        return None
    return sequence.zfill(_SEQUENCE_DIGITS) + str(position.sub_sequence_number).zfill(_SUB_DIGITS)
