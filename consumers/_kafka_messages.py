"""Turning confluent-kafka messages into Shardline's consumed records and source batches.

Shared by the group consumer and the bounded replay source; pure apart from reading the
messages, so it is unit-testable with simple doubles.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, overload

from consumers.source import SourceBatch
from shardline.eventid import EVENT_ID_MAC_HEADER, EventIdKey
from shardline.gcpause import collector_paused
from shardline.kafka_config import EVENT_ID_HEADER
from shardline.lograte import RepeatedWarning
from shardline.records import (
    ConsumedRecord,
    ConsumedRecordDraft,
    KafkaPosition,
    KafkaPositionDraft,
)

__all__ = [
    "KafkaRecords",
    "arrival_from_millis",
    "event_id_verified",
    "lazy_batches",
    "partition_name",
    "to_batches",
    "to_record",
]

log = logging.getLogger(__name__)
_header_warnings = RepeatedWarning(log)

_TIMESTAMP_NOT_AVAILABLE = 0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PAUSE_FROM = 16
"""Messages from which a build pauses the collector (the pause itself costs 0.7 us)."""


def partition_name(topic: str, partition: int) -> str:
    """The pipeline's name of a Kafka partition (the same as ``KafkaPosition.partition``)."""
    return f"{topic}/{partition}"


def _headers(headers: list[tuple[str, bytes | None]]) -> tuple[dict[str, bytes], str | None]:
    header_map = {name: header_value or b"" for name, header_value in headers}
    raw_id = header_map.get(EVENT_ID_HEADER)
    return header_map, (raw_id.decode("utf-8", "replace") if raw_id is not None else None)


def _unreadable_headers(topic: str, partition: int, offset: int) -> None:
    """A message whose headers confluent-kafka cannot hand out: the record goes on without them.

    Kafka header names are any bytes on the wire; confluent-kafka decodes each as UTF-8 and,
    for one that is not, ``Message.headers()`` raises ``SystemError`` (from the
    ``UnicodeDecodeError``), for the whole list.  Raised out of a batch's records, that bare
    error stopped the consumer at the same offset on every start.  The record keeps its data,
    key and position; without headers its identity is its offset, as for any message
    without a verified event id.  Logged at most once a minute, by position only.
    """
    _header_warnings.warning(
        "headers",
        "kafka message %s/%s@%s: headers are not UTF-8 names; record kept without them",
        topic,
        partition,
        offset,
    )


def event_id_verified(
    key: EventIdKey | None, event_id: str | None, data: bytes, header_map: Mapping[str, bytes]
) -> bool:
    """Whether the record's event id is its identity: the MAC header verifies with ``key``."""
    if key is None or event_id is None:
        return False
    mac = header_map.get(EVENT_ID_MAC_HEADER)
    return mac is not None and key.accepts(event_id, data, mac.decode("ascii", "replace"))


def arrival_from_millis(millis: int) -> datetime | None:
    """A Kafka timestamp (milliseconds since the epoch) as an aware UTC ``datetime``, or
    ``None`` when no ``datetime`` can hold it.

    A producer sets its records' CreateTime to any 64-bit value, and brokers take any by
    default (``message.timestamp.difference.max.ms``), so a timestamp past the year 9999 is
    input like any other: the record keeps its data and position, without an arrival time,
    instead of stopping the consumer at every start (``datetime.fromtimestamp`` raises for it).
    """
    try:
        return datetime.fromtimestamp(millis / 1000.0, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _key_text(key: Any) -> str:
    if key is None:
        return ""
    if type(key) is bytes:
        return key.decode("utf-8", "surrogateescape")
    return str(key)


def to_record(msg: Any, *, with_timestamp: bool = True) -> ConsumedRecord:
    """One message as a :class:`ConsumedRecord`; the key becomes the partition key.

    Keys that are not UTF-8 survive through ``surrogateescape`` (``.encode('utf-8',
    'surrogateescape')`` gives the original bytes back).  A tombstone's value is ``b""``.
    """
    batches = to_batches([msg], with_timestamp=with_timestamp)
    return batches[0].records[0]


def to_batches(
    messages: Iterable[Any],
    *,
    with_timestamp: bool = True,
    on_error: Callable[[Any], None] | None = None,
    event_id_key: EventIdKey | None = None,
) -> list[SourceBatch]:
    """Group messages into one batch per partition, keeping their order; records built now.

    A message carrying an error (``msg.error()``) is not a record: it goes to ``on_error``
    (which may raise to stop the source) or, without one, is skipped.

    A message's event-id header becomes its identity only when ``event_id_key`` verifies the
    MAC header next to it; otherwise it is informational and the offset is the identity.
    :func:`lazy_batches` is the same grouping with records built only when read.
    """
    return [
        SourceBatch(
            partition=partition_name(topic, partition),
            records=_build_records(group, topic, partition, with_timestamp, event_id_key),
            topic=topic,
        )
        for (topic, partition), group in _group(messages, on_error).items()
    ]


def lazy_batches(
    messages: Iterable[Any],
    *,
    with_timestamp: bool = True,
    on_error: Callable[[Any], None] | None = None,
    event_id_key: EventIdKey | None = None,
    holds: Mapping[str, int] | None = None,
) -> list[SourceBatch]:
    """:func:`to_batches` whose records are :class:`KafkaRecords`, built when first read.

    Grouping reads three fields per message (error, topic, partition); everything else --
    decoding the key, the timestamp's ``datetime``, headers, the position -- waits until a
    record is indexed or iterated, so a consumer that only counts, checkpoints or forwards
    raw batches never pays for it.  Message errors are still handled here, at once.
    ``holds`` gives each partition's :attr:`SourceBatch.hold` by name (0 when absent).
    """
    batches: list[SourceBatch] = []
    for (topic, partition), group in _group(messages, on_error).items():
        name = partition_name(topic, partition)
        batches.append(
            SourceBatch(
                partition=name,
                records=KafkaRecords(group, topic, partition, with_timestamp, event_id_key),
                topic=topic,
                hold=holds.get(name, 0) if holds is not None else 0,
            )
        )
    return batches


def _group(
    messages: Iterable[Any], on_error: Callable[[Any], None] | None
) -> dict[tuple[str, int], list[Any]]:
    """Messages by (topic, partition) in arrival order; messages carrying an error left out.

    Consecutive messages of one partition (the usual shape of a fetch) share the lookup.
    """
    grouped: dict[tuple[str, int], list[Any]] = {}
    add: Callable[[Any], None] | None = None
    current_topic: str | None = None
    current_partition = -1
    for msg in messages:
        if msg.error() is not None:
            if on_error is not None:
                on_error(msg.error())
            continue
        partition = msg.partition()
        topic = msg.topic()
        if partition != current_partition or topic != current_topic or add is None:
            current_topic, current_partition = topic, partition
            found = grouped.get((topic, partition))
            if found is None:
                found = grouped[(topic, partition)] = []
            add = found.append
        add(msg)
    return grouped


def _build_records(
    messages: Sequence[Any],
    topic: str,
    partition: int,
    with_timestamp: bool,
    event_id_key: EventIdKey | None,
) -> list[ConsumedRecord]:
    """The records of one partition's messages, built with the cyclic collector paused.

    Each record is two tracked objects (the record and its position) that live at least as
    long as the batch: collections triggered while the batch is being built find nothing to
    free and only push the records into older generations, as the Kinesis reader's batches
    did (:mod:`shardline.gcpause`).  A lone record (indexing one position) is built as it is.
    """
    if len(messages) < _PAUSE_FROM:
        return _build_unpaused(messages, topic, partition, with_timestamp, event_id_key)
    with collector_paused():
        return _build_unpaused(messages, topic, partition, with_timestamp, event_id_key)


def _build_unpaused(
    messages: Sequence[Any],
    topic: str,
    partition: int,
    with_timestamp: bool,
    event_id_key: EventIdKey | None,
) -> list[ConsumedRecord]:
    """The records of one partition's messages (none of which carries an error).

    The hot loop of every Kafka source that reads its records, so it avoids per-message work
    that is not needed: equal timestamps (messages produced in the same millisecond) share
    one ``datetime``, and messages without headers skip the header mapping.
    """
    records: list[ConsumedRecord] = []
    add = records.append
    last_millis = -1
    last_arrival: datetime | None = None
    record_draft, position_draft = ConsumedRecordDraft, KafkaPositionDraft
    record_class, position_class = ConsumedRecord, KafkaPosition
    for msg in messages:
        key = msg.key()
        value = msg.value()
        try:
            headers = msg.headers()
        except (SystemError, UnicodeError):
            _unreadable_headers(topic, partition, msg.offset())
            headers = None
        position = position_draft()
        position.topic = topic
        position.partition_id = partition
        position.offset = msg.offset()
        position.__class__ = position_class  # type: ignore[assignment]
        record = record_draft()
        data = record.data = value if value is not None else b""
        record.partition_key = (
            key.decode("utf-8", "surrogateescape") if type(key) is bytes else _key_text(key)
        )
        record.position = position  # type: ignore[assignment]
        arrival: datetime | None = None
        if with_timestamp:
            kind, millis = msg.timestamp()
            if kind != _TIMESTAMP_NOT_AVAILABLE:
                if millis != last_millis:  # once a distinct millisecond, not a message
                    last_millis = millis
                    last_arrival = arrival_from_millis(millis)
                arrival = last_arrival
        record.arrival_time = arrival
        record.explicit_hash_key = None
        if headers:
            header_map, event_id = _headers(headers)
            record.event_id = event_id
            record.headers = header_map
            record.event_id_verified = event_id_verified(event_id_key, event_id, data, header_map)
        else:
            record.event_id = None
            record.headers = None
            record.event_id_verified = False
        record.__class__ = record_class  # type: ignore[assignment]
        add(record)  # type: ignore[arg-type]
    return records


class KafkaRecords(Sequence[ConsumedRecord]):
    """One partition's consumed records, built from the confluent-kafka messages when read.

    Indexing one position builds that one record; iterating (or reading ``records``) builds
    all of them once and keeps them, so later reads return the same objects.  A slice is
    another :class:`KafkaRecords` over the same messages, still unbuilt.  Equal to any
    sequence holding equal records in the same order.
    """

    __slots__ = ("_event_id_key", "_messages", "_partition", "_records", "_topic", "_with_timestamp")

    def __init__(
        self,
        messages: list[Any],
        topic: str,
        partition: int,
        with_timestamp: bool = True,
        event_id_key: EventIdKey | None = None,
        *,
        records: list[ConsumedRecord] | None = None,
    ) -> None:
        self._messages = messages
        self._topic = topic
        self._partition = partition
        self._with_timestamp = with_timestamp
        self._event_id_key = event_id_key
        self._records = records

    def __len__(self) -> int:
        return len(self._messages)

    @overload
    def __getitem__(self, index: int) -> ConsumedRecord: ...

    @overload
    def __getitem__(self, index: slice) -> KafkaRecords: ...

    def __getitem__(self, index: int | slice) -> ConsumedRecord | KafkaRecords:
        records = self._records
        if isinstance(index, slice):
            return KafkaRecords(
                self._messages[index],
                self._topic,
                self._partition,
                self._with_timestamp,
                self._event_id_key,
                records=records[index] if records is not None else None,
            )
        if records is not None:
            return records[index]
        message = self._messages[index]
        return _build_unpaused(
            [message], self._topic, self._partition, self._with_timestamp, self._event_id_key
        )[0]

    def __iter__(self) -> Iterator[ConsumedRecord]:
        return iter(self.records)

    @property
    def records(self) -> list[ConsumedRecord]:
        """Every record, built on first use."""
        records = self._records
        if records is None:
            records = self._records = _build_records(
                self._messages, self._topic, self._partition, self._with_timestamp, self._event_id_key
            )
        return records

    def __eq__(self, other: object) -> bool:
        if isinstance(other, KafkaRecords | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"KafkaRecords(<{len(self)} records of {self._topic}/{self._partition}>)"


def last_offsets(batches: Sequence[SourceBatch]) -> dict[str, int]:
    """The highest offset per partition in ``batches`` (for bookkeeping of what was read)."""
    offsets: dict[str, int] = {}
    for batch in batches:
        if batch.records:
            position = batch.records[-1].position
            assert isinstance(position, KafkaPosition)
            offsets[batch.partition] = position.offset
    return offsets
