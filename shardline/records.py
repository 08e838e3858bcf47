"""Values that travel through Shardline: records, positions and acknowledgements.

All are frozen, slotted dataclasses: cheap to create, hashable, safe to share between tasks.
Their ``repr`` never shows payload bytes, so a record can be logged without leaking data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

__all__ = [
    "SHARD_END",
    "Ack",
    "ConsumedRecord",
    "KafkaAck",
    "KafkaPosition",
    "KinesisPosition",
    "Position",
    "Record",
]

SHARD_END = "SHARD_END"
"""Checkpoint value (KCL's sentinel) meaning every record of a closed shard was processed."""


@dataclass(frozen=True, slots=True)
class Record:
    """One record to produce.

    ``partition_key`` may be left ``None`` when the producer has a key strategy.
    ``event_id`` is a producer-assigned identity that idempotent sinks use to absorb
    duplicates (a response lost after the service accepted the write resends the record).
    """

    data: bytes = field(repr=False)
    partition_key: str | None = None
    explicit_hash_key: int | None = None
    event_id: str | None = None
    timestamp: datetime | None = None
    headers: Mapping[str, bytes] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (
            f"Record(<{len(self.data)} bytes>, partition_key={self.partition_key!r}, "
            f"explicit_hash_key={self.explicit_hash_key!r}, event_id={self.event_id!r})"
        )


@dataclass(frozen=True, slots=True, order=True)
class KinesisPosition:
    """Where a record sits in a Kinesis stream.

    Ordering compares sequence numbers numerically (they are decimal strings of up to
    128 bits), then the sub-sequence number of a de-aggregated KPL record.
    """

    stream: str = field(compare=False)
    shard_id: str = field(compare=False)
    sequence_number: str = field(compare=False)
    sub_sequence_number: int = field(default=0, compare=False)
    _order: tuple[int, int] = field(init=False, repr=False, compare=True, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_order", (int(self.sequence_number), self.sub_sequence_number))

    @property
    def identity(self) -> str:
        """Stable identity of the record: stream/shard/sequence/sub-sequence."""
        return f"{self.stream}/{self.shard_id}/{self.sequence_number}/{self.sub_sequence_number}"

    @property
    def partition(self) -> str:
        return self.shard_id


@dataclass(frozen=True, slots=True, order=True)
class KafkaPosition:
    """Where a message sits in a Kafka topic."""

    topic: str
    partition_id: int
    offset: int

    @property
    def identity(self) -> str:
        return f"{self.topic}/{self.partition_id}/{self.offset}"

    @property
    def partition(self) -> str:
        return f"{self.topic}/{self.partition_id}"


Position: TypeAlias = KinesisPosition | KafkaPosition


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    """A record read from a stream, with the position it was read at.

    ``event_id``, when the producer set one, is the identity idempotent sinks key on;
    otherwise the position's identity is used.
    """

    data: bytes = field(repr=False)
    partition_key: str
    position: Position
    arrival_time: datetime | None = None
    explicit_hash_key: int | None = None
    event_id: str | None = None
    headers: Mapping[str, bytes] | None = field(default=None, repr=False)

    @property
    def identity(self) -> str:
        return self.event_id if self.event_id is not None else self.position.identity

    def __repr__(self) -> str:
        return (
            f"ConsumedRecord(<{len(self.data)} bytes>, partition_key={self.partition_key!r}, "
            f"position={self.position!r}, event_id={self.event_id!r})"
        )


@dataclass(frozen=True, slots=True)
class Ack:
    """Acknowledgement of one record written to Kinesis.

    ``sub_sequence_number`` is the record's index inside a KPL aggregate, ``None`` when the
    record was sent on its own.
    """

    shard_id: str
    sequence_number: str
    sub_sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class KafkaAck:
    """Acknowledgement of one message written to Kafka."""

    topic: str
    partition: int
    offset: int
