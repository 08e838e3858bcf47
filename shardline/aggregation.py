"""The KPL aggregated-record format: many user records in one Kinesis record.

Layout (the KPL's ``aggregation-format.md``)::

    F3 89 9A C2 | protobuf AggregatedRecord (proto2) | MD5 of the protobuf bytes (16)

with partition keys and explicit hash keys (decimal strings) stored once each in tables
that the records index into.  Aggregation is what lets a producer push 1 MiB/s through a
shard with small records (the per-shard limit of 1000 records/s counts Kinesis records, not
user records).  The bytes produced here are identical to what the KPL and aws-kinesis-agg
produce for the same records, and :func:`deaggregate` reads theirs.

Why the encoder is hand-written and the decoder uses the protobuf library
------------------------------------------------------------------------
CPU time per record for 100,000 records of 100 B over 1,000 uniform keys, single-pass
encode including the exact size bookkeeping :meth:`AggregateBuilder.try_add` needs, median
of 5-7 interleaved runs on a shared 2-vCPU box (Python 3.11, protobuf 7.36 upb backend):

===============================================  ================  =================
encoder                                          1 MiB aggregates  50 KiB aggregates
===============================================  ================  =================
this module (pre-encoded headers, one join)      1.12 us/record    1.74 us/record
protobuf message filled at ``encode()``          1.59 us/record    1.75 us/record
aws-kinesis-agg ``AggRecord`` (protobuf)         5.5 us/record     5.8 us/record
===============================================  ================  =================

A shard-aware producer fills large aggregates, where the hand-written encoder costs ~30%
less and keeps the batch path inside its ~2 us/record budget; with small aggregates and
many distinct keys the two are even.  (Those figures predate :meth:`AggregateBuilder.add_records`,
the batch append that also caches each record's header by key index and data length; the
producer's whole batch path now measures about 2 us/record, see docs/performance.md.)
So encoding is done here: per record a dict lookup and
a short ``bytes`` join; ``encode()`` is one ``join`` and one MD5.  Decoding is the other way
round: protobuf's C parser plus a walk over the message took 0.82 us/record against
1.19 us/record for a pure-Python varint walker, and it rejects malformed input for free, so
:func:`deaggregate` uses the protobuf library (schema in :mod:`shardline._kpl_pb`).  A
consumer's records come from :func:`expand_aggregate`, which walks the parsed message once and
builds each ConsumedRecord from a slot-compatible draft: on 50 KiB aggregates of 100-byte
records over 1,000 keys, ~0.8 us per user record (of it ~0.17 us the MD5 check and ~0.25 us
protobuf's per-record access) when the batch is built with the collector paused, as
:func:`consumers.kinesis.records_from_api` does; :func:`deaggregate_consumed`, one aggregate
per call, ~2 us, the difference being the garbage collector.  The tests check the encoder
byte for byte against protobuf's own serialisation and against aws-kinesis-agg, and the
consumer's fast path against a per-record reference.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any, Final, NamedTuple

from google.protobuf.message import DecodeError

from shardline._kpl_pb import AggregatedRecord
from shardline.errors import AggregateRefusedError, ConfigurationError, ValidationError
from shardline.eventid import EVENT_ID_MAC_TAG, EventIdKey
from shardline.limits import DEFAULT_MAX_RECORD_BYTES, KPL_DEFAULT_AGGREGATE_BYTES, PARTITION_KEY_MAX_CHARS
from shardline.records import (
    ConsumedRecord,
    ConsumedRecordDraft,
    KinesisPosition,
    KinesisPositionDraft,
    RefusedRecord,
)
from shardline.shardmath import KeysInRange
from shardline.validation import validate_explicit_hash_key

__all__ = [
    "DEFAULT_MAX_USER_RECORDS",
    "DIGEST_SIZE",
    "EMPTY_AGGREGATE_SIZE",
    "EVENT_ID_TAG",
    "MAGIC",
    "AggregateBuilder",
    "AggregationCaches",
    "DeaggregationPolicy",
    "Expansion",
    "UserRecord",
    "aggregate_payloads",
    "deaggregate",
    "deaggregate_consumed",
    "expand_aggregate",
    "is_aggregated",
    "single_aggregate_size",
]

MAGIC: Final = b"\xf3\x89\x9a\xc2"
DIGEST_SIZE: Final = 16
EMPTY_AGGREGATE_SIZE: Final = len(MAGIC) + DIGEST_SIZE
"""Bytes an aggregate costs before its first record (magic + MD5)."""

_md5 = hashlib.md5

# Repeated fields are read by slicing them (``message.records[:]``, a list), never by
# iterating them: upb's containers have no iterator, so ``for`` and ``list()`` index them until
# an IndexError is raised and caught, two per aggregate (its records, its key table), which cost
# more than the rest of walking a three-record aggregate.

# Protobuf wire tags: (field number << 3) | wire type (0 = varint, 2 = length-delimited).
_TAG_PARTITION_KEY_ENTRY: Final = b"\x0a"  # AggregatedRecord.partition_key_table = 1
_TAG_HASH_KEY_ENTRY: Final = b"\x12"  # AggregatedRecord.explicit_hash_key_table = 2
_TAG_RECORD: Final = b"\x1a"  # AggregatedRecord.records = 3
_TAG_PARTITION_KEY_INDEX: Final = b"\x08"  # Record.partition_key_index = 1
_TAG_HASH_KEY_INDEX: Final = b"\x10"  # Record.explicit_hash_key_index = 2
_TAG_DATA: Final = b"\x1a"  # Record.data = 3
_TAG_TAGS: Final = b"\x22"  # Record.tags = 4
_TAG_TAG_KEY: Final = b"\x0a"  # Tag.key = 1
_TAG_TAG_VALUE: Final = b"\x12"  # Tag.value = 2

EVENT_ID_TAG: Final = "event_id"
"""Key of the per-record KPL tag that carries a producer-assigned event id.

Kinesis entries have no headers; the KPL's ``Record.tags`` is the one place inside the
format where per-record metadata travels, and every KPL de-aggregator (the KCL,
aws-kinesis-agg) skips tags it does not know, so the id costs consumers nothing.
"""


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_VARINTS: Final = tuple(_encode_varint(i) for i in range(4096))
_VARINTS_LEN: Final = len(_VARINTS)
_KEY_INDEX_FIELDS: Final = tuple(_TAG_PARTITION_KEY_INDEX + v for v in _VARINTS)
_HASH_INDEX_FIELDS: Final = tuple(_TAG_HASH_KEY_INDEX + v for v in _VARINTS)
_ENTRY_CACHE_SIZE: Final = 16_384
_HEADER_CACHE_SIZE: Final = 1_024
"""Distinct data lengths remembered per partition-key index (headers are a few bytes each)."""


def _varint(value: int) -> bytes:
    return _VARINTS[value] if value < _VARINTS_LEN else _encode_varint(value)


_EVENT_ID_KEY_FIELD: Final = _TAG_TAG_KEY + _varint(len(EVENT_ID_TAG)) + EVENT_ID_TAG.encode("ascii")


_EVENT_ID_MAC_KEY_FIELD: Final = (
    _TAG_TAG_KEY + _varint(len(EVENT_ID_MAC_TAG)) + EVENT_ID_MAC_TAG.encode("ascii")
)


def _event_id_trailer(event_id: str, mac: str | None = None) -> bytes:
    """The encoded ``tags`` fields that follow a record's data.

    One Tag with key ``event_id``, and a second with key ``event_id_mac`` when the producer
    signs its event ids (:class:`shardline.eventid.EventIdKey`).
    """
    value = event_id.encode("utf-8")
    tag = b"".join((_EVENT_ID_KEY_FIELD, _TAG_TAG_VALUE, _varint(len(value)), value))
    trailer = _TAG_TAGS + _varint(len(tag)) + tag
    if mac is None:
        return trailer
    signature = mac.encode("ascii")
    mac_tag = b"".join((_EVENT_ID_MAC_KEY_FIELD, _TAG_TAG_VALUE, _varint(len(signature)), signature))
    return trailer + _TAG_TAGS + _varint(len(mac_tag)) + mac_tag


def _record_header(fields: bytes, data_length: int, trailer_length: int = 0) -> bytes:
    """Everything of one ``records`` entry that precedes the data bytes.

    ``trailer_length`` counts what follows the data inside the record (its tags).
    """
    data_varint = _VARINTS[data_length] if data_length < _VARINTS_LEN else _encode_varint(data_length)
    inner = len(fields) + 1 + len(data_varint) + data_length + trailer_length
    return b"".join(
        (
            _TAG_RECORD,
            _VARINTS[inner] if inner < _VARINTS_LEN else _encode_varint(inner),
            fields,
            _TAG_DATA,
            data_varint,
        )
    )


def _cache_header(headers: dict[int, bytes], field: bytes, length: int) -> bytes:
    """The header of a plain record with index ``field`` and ``length`` bytes of data, kept
    in ``headers`` (the headers of one key position, by data length; bounded)."""
    header = _record_header(field, length)
    if len(headers) >= _HEADER_CACHE_SIZE:
        headers.clear()
    headers[length] = header
    return header


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One record inside an aggregate; ``sub_sequence_number`` is its index there.

    ``event_id`` is the value of the record's ``event_id`` tag, when its producer set one.
    """

    partition_key: str
    data: bytes = field(repr=False)
    explicit_hash_key: int | None = None
    sub_sequence_number: int = 0
    event_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"UserRecord(partition_key={self.partition_key!r}, <{len(self.data)} bytes>, "
            f"explicit_hash_key={self.explicit_hash_key!r}, "
            f"sub_sequence_number={self.sub_sequence_number}, event_id={self.event_id!r})"
        )


class AggregationCaches:
    """Encodings the builders of one producer share: partition-key table entries and headers.

    A key's table entry, and the header of a record at a given key index and data length,
    are the same bytes in every aggregate, whatever its shard.  Each builder once kept its
    own, up to 16,384 entries: a producer over 64 shards and a million device keys held about
    a million of them (a key string, its entry and a dict slot each, ~200 bytes), and memory
    grew with the shard count.  One set per producer bounds it at 16,384 entries (~3 MB).
    Builders sharing a set must run on one thread, as one producer's do.
    """

    __slots__ = ("entries", "headers")

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}
        # Per partition-key index, the record headers by data length.
        self.headers: list[dict[int, bytes]] = []


class AggregateBuilder:
    """Accumulates user records into one aggregate, knowing its exact encoded size at all times.

    Records should all be bound for one shard (the producer groups them by shard first):
    the Kinesis entry is routed by :attr:`entry_partition_key` / :attr:`entry_explicit_hash_key`,
    which are the first record's, as the KPL does.  ``max_bytes`` bounds the encoded aggregate;
    the PutRecords entry additionally counts the entry's partition key.

    An aggregate holds at most :data:`DEFAULT_MAX_USER_RECORDS` user records, whatever
    ``max_bytes`` allows: a consumer's default :class:`DeaggregationPolicy` refuses more, and an
    aggregate raised towards 1 MiB held up to ~170,000 small records, which Shardline's own
    consumers then dead-lettered whole.

    A builder is meant to be reused (:meth:`reset` after :meth:`encode`): the encoded key-table
    entries and record headers it has seen stay cached (in ``caches``, which a producer's
    builders share), so a record whose key is already in the table costs two dict lookups and
    two list appends (:meth:`add_records`).

    Not thread-safe; one builder per shard per producer task.
    """

    __slots__ = (
        "_count",
        "_entry_cache",
        "_event_id_key",
        "_first_explicit_hash_key",
        "_first_partition_key",
        "_hash_key_fields",
        "_hash_key_table",
        "_header_cache",
        "_key_fields",
        "_key_headers",
        "_key_table",
        "_max_bytes",
        "_parts",
        "_size",
        "_tagged",
    )

    def __init__(
        self,
        max_bytes: int = KPL_DEFAULT_AGGREGATE_BYTES,
        event_id_key: EventIdKey | None = None,
        caches: AggregationCaches | None = None,
    ) -> None:
        if max_bytes <= EMPTY_AGGREGATE_SIZE:
            raise ConfigurationError(f"max_bytes must exceed {EMPTY_AGGREGATE_SIZE} (magic + MD5)")
        self._max_bytes = max_bytes
        # Signs each event id (an ``event_id_mac`` tag) so consumers can trust it as identity.
        self._event_id_key = event_id_key
        # Encoded partition-key table entries and, per key index, record headers by data
        # length, kept across aggregates (a key recurs in many; index i with a 100-byte record
        # always frames the same way) and shared with the producer's other builders.
        caches = caches if caches is not None else AggregationCaches()
        self._entry_cache = caches.entries
        self._header_cache = caches.headers
        self._key_fields: dict[str, bytes] = {}
        self._key_headers: dict[str, dict[int, bytes]] = {}
        self._key_table: list[bytes] = []
        self._hash_key_fields: dict[int, bytes] = {}
        self._hash_key_table: list[bytes] = []
        self._parts: list[bytes] = []
        self._count = 0
        self._tagged = False
        self._size = EMPTY_AGGREGATE_SIZE
        self._first_partition_key: str | None = None
        self._first_explicit_hash_key: int | None = None

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def __len__(self) -> int:
        return self._count

    @property
    def encoded_size(self) -> int:
        """Exact length of :meth:`encode`'s result for the records added so far."""
        return self._size

    @property
    def tagged(self) -> bool:
        """True when some record carries tags (an event id): it must travel as an aggregate."""
        return self._tagged

    @property
    def entry_partition_key(self) -> str | None:
        """Partition key for the PutRecords entry carrying this aggregate (``None`` if empty)."""
        return self._first_partition_key

    @property
    def entry_explicit_hash_key(self) -> int | None:
        """Explicit hash key for the PutRecords entry: the first record's, when it has one.

        The entry's partition key is the first record's, so Kinesis routes it by the first
        record's hash key either way: by that key's MD5 when the record has no explicit hash
        key (``None``: the entry goes without one), else by the one given here, which pins the
        aggregate to the shard its records were grouped for.  Leaving out the redundant one
        saves an MD5, a 39-digit ``str()`` and ~60 request bytes an aggregate (stream-bench's
        producing side at 64 shards, three records an aggregate: 10.96 -> 10.85 us/record,
        medians of four).  ``str()`` it for the API call.
        """
        return self._first_explicit_hash_key

    def _plan(
        self, partition_key: str, data: bytes, explicit_hash_key: int | None, trailer: bytes
    ) -> tuple[int, bytes | None, bytes, bytes | None, bytes, bytes]:
        """Encode what adding one record would append, without changing the builder.

        Returns the new total size, the new table entries (``None`` when the key is already
        in its table), the index fields, and the record's header (everything before the data).
        """
        added = 0
        key_entry: bytes | None = None
        key_field = self._key_fields.get(partition_key)
        if key_field is None:
            key_entry = self._entry_cache.get(partition_key)
            if key_entry is None:
                encoded = partition_key.encode("utf-8")
                key_entry = _TAG_PARTITION_KEY_ENTRY + _varint(len(encoded)) + encoded
            added = len(key_entry)
            index = len(self._key_fields)
            key_field = (
                _KEY_INDEX_FIELDS[index]
                if index < _VARINTS_LEN
                else _TAG_PARTITION_KEY_INDEX + _varint(index)
            )
        hash_entry: bytes | None = None
        hash_field = b""
        if explicit_hash_key is None:
            fields = key_field
        else:
            known = self._hash_key_fields.get(explicit_hash_key)
            if known is not None:
                hash_field = known
            else:
                digits = str(explicit_hash_key).encode("ascii")
                hash_entry = _TAG_HASH_KEY_ENTRY + _VARINTS[len(digits)] + digits
                added += len(hash_entry)
                index = len(self._hash_key_fields)
                hash_field = (
                    _HASH_INDEX_FIELDS[index]
                    if index < _VARINTS_LEN
                    else _TAG_HASH_KEY_INDEX + _varint(index)
                )
            fields = key_field + hash_field
        header = _record_header(fields, len(data), len(trailer))
        new_size = self._size + added + len(header) + len(data) + len(trailer)
        return new_size, key_entry, key_field, hash_entry, hash_field, header

    def size_with(
        self,
        partition_key: str,
        data: bytes,
        explicit_hash_key: int | None = None,
        event_id: str | None = None,
    ) -> int:
        """Exact encoded size of the whole aggregate if this record were added."""
        trailer = self._trailer(event_id, data) if event_id is not None else b""
        return self._plan(partition_key, data, explicit_hash_key, trailer)[0]

    def _trailer(self, event_id: str, data: bytes) -> bytes:
        key = self._event_id_key
        return _event_id_trailer(event_id, None if key is None else key.mac(event_id, data))

    def try_add(
        self,
        partition_key: str,
        data: bytes,
        explicit_hash_key: int | None = None,
        event_id: str | None = None,
    ) -> bool:
        """Add the record unless that would exceed ``max_bytes``; a first record always fits.

        ``event_id`` travels in the record's ``event_id`` tag.  Inputs are assumed validated
        (:mod:`shardline.validation`); an oversized single record is accepted so the
        caller's size check, not this builder, reports it.
        """
        if self._count >= DEFAULT_MAX_USER_RECORDS:
            return False  # the class docstring: a consumer's default refuses more
        parts = self._parts
        if explicit_hash_key is None and event_id is None:
            # The common case, a key already in the table, without building a plan.
            headers = self._key_headers.get(partition_key)
            if headers is not None:
                length = len(data)
                header = headers.get(length)
                if header is None:
                    header = _cache_header(headers, self._key_fields[partition_key], length)
                size = self._size + len(header) + length
                if size > self._max_bytes:
                    return False  # a known key means the builder is not empty
                parts.append(header)
                parts.append(data)
                self._size = size
                self._count += 1
                return True
            # A key new to this aggregate whose table entry is cached (it was in an earlier
            # one), at a position an earlier aggregate reached: as in add_records, no plan
            # either, and the header is made and kept for the next aggregate when missing.
            position = len(self._key_table)
            key_entry = self._entry_cache.get(partition_key)
            header_cache = self._header_cache
            if key_entry is not None and parts and position < len(header_cache) and position < _VARINTS_LEN:
                headers = header_cache[position]
                length = len(data)
                header = headers.get(length)
                if header is None:
                    header = _cache_header(headers, _KEY_INDEX_FIELDS[position], length)
                size = self._size + len(key_entry) + len(header) + length
                if size > self._max_bytes:
                    return False
                self._key_fields[partition_key] = _KEY_INDEX_FIELDS[position]
                self._key_table.append(key_entry)
                self._key_headers[partition_key] = headers
                parts.append(header)
                parts.append(data)
                self._size = size
                self._count += 1
                return True
        trailer = self._trailer(event_id, data) if event_id is not None else b""
        new_size, key_entry, key_field, hash_entry, hash_field, header = self._plan(
            partition_key, data, explicit_hash_key, trailer
        )
        if new_size > self._max_bytes and parts:
            return False
        if key_entry is not None:
            self._remember_key(partition_key, key_entry, key_field)
        if hash_entry is not None and explicit_hash_key is not None:
            self._hash_key_fields[explicit_hash_key] = hash_field
            self._hash_key_table.append(hash_entry)
        if not parts:
            self._first_partition_key = partition_key
            self._first_explicit_hash_key = explicit_hash_key
        parts.append(header)
        parts.append(data)
        if trailer:
            parts.append(trailer)
            self._tagged = True
        self._size = new_size
        self._count += 1
        return True

    def _remember_key(self, partition_key: str, key_entry: bytes, key_field: bytes) -> None:
        index = len(self._key_fields)
        self._key_fields[partition_key] = key_field
        self._key_table.append(key_entry)
        cache = self._entry_cache
        if partition_key not in cache:
            if len(cache) >= _ENTRY_CACHE_SIZE:
                cache.clear()
            cache[partition_key] = key_entry
        header_cache = self._header_cache
        while len(header_cache) <= index:
            header_cache.append({})
        self._key_headers[partition_key] = header_cache[index]

    def add_records(
        self,
        keys: Sequence[str],
        datas: Sequence[bytes],
        order: Sequence[int],
        start: int = 0,
        extras: Mapping[int, tuple[int | None, str | None]] | None = None,
    ) -> tuple[int, int]:
        """Add the record ``(keys[i], datas[i])`` for ``i = order[k]``, k from ``start`` on, while they fit.

        The batch path of a producer, on columns (no object per record): per record whose
        key is already in the table, two dict lookups and two appends, nothing allocated.
        ``extras`` maps the index of a record that has an explicit hash key or an event id
        to ``(explicit hash key, event id)``.  Records must be validated.  Returns
        ``(k, user_bytes)``: the first position not added (``start`` when the next record
        does not fit a non-empty builder; a first record always fits) and the data +
        partition-key characters of the records added.
        """
        parts = self._parts
        append = parts.append
        key_headers = self._key_headers
        key_fields = self._key_fields
        key_table = self._key_table
        entry_cache = self._entry_cache
        header_cache = self._header_cache
        max_bytes = self._max_bytes
        size = self._size
        user_bytes = 0
        count = self._count
        k = start
        # at most DEFAULT_MAX_USER_RECORDS records an aggregate (the class docstring): one
        # bound on the loop, nothing per record
        stop = min(len(order), start + DEFAULT_MAX_USER_RECORDS - count)
        try:
            while k < stop:
                index = order[k]
                key = keys[index]
                data = datas[index]
                special = extras.get(index) if extras else None
                headers = key_headers.get(key)
                added = 0
                if headers is None or special is not None:
                    # A key new to this aggregate: inline (its table entry from the shared
                    # cache, or encoded and cached), except for a record with an explicit
                    # hash key or an event id and past the 4,096th key, which take the
                    # general path.  With a million devices nearly every record is a key
                    # new to its aggregate: the general path's plan cost ~2 us a record.
                    position = len(key_table)
                    if special is not None or position >= _VARINTS_LEN:
                        self._size = size
                        self._count = count
                        ehk, event_id = special if special is not None else (None, None)
                        if not self.try_add(key, data, ehk, event_id):
                            break
                        size = self._size
                        count = self._count
                        user_bytes += len(data) + len(key)
                        k += 1
                        continue
                    key_entry = entry_cache.get(key)
                    if key_entry is None:
                        encoded = key.encode("utf-8")
                        key_entry = _TAG_PARTITION_KEY_ENTRY + _varint(len(encoded)) + encoded
                        if len(entry_cache) >= _ENTRY_CACHE_SIZE:
                            entry_cache.clear()
                        entry_cache[key] = key_entry
                    while len(header_cache) <= position:
                        header_cache.append({})
                    headers = header_cache[position]
                    added = len(key_entry)
                length = len(data)
                header = headers.get(length)
                if header is None:
                    field = key_fields.get(key) or _KEY_INDEX_FIELDS[len(key_table)]
                    header = _cache_header(headers, field, length)
                grown = size + added + len(header) + length
                if grown > max_bytes and count:
                    break  # a first record always fits (an oversized one is the caller's to report)
                if added:
                    if not count:
                        self._first_partition_key = key
                    key_fields[key] = _KEY_INDEX_FIELDS[len(key_table)]
                    key_table.append(key_entry)  # type: ignore[arg-type]
                    key_headers[key] = headers
                append(header)
                append(data)
                size = grown
                count += 1
                user_bytes += length + len(key)
                k += 1
        finally:
            self._size = size
            self._count = count
        return k, user_bytes

    def encode(self) -> bytes:
        """The aggregate's bytes; the builder keeps its records until :meth:`reset`."""
        if not self._parts:
            raise ValidationError("cannot encode an empty aggregate")
        body = b"".join(chain(self._key_table, self._hash_key_table, self._parts))
        return b"".join((MAGIC, body, _md5(body, usedforsecurity=False).digest()))

    def reset(self) -> None:
        """Empty the builder for the next aggregate (keeps ``max_bytes`` and the caches)."""
        self._key_fields = {}
        self._key_headers = {}
        self._key_table = []
        self._hash_key_fields = {}
        self._hash_key_table = []
        self._parts = []
        self._count = 0
        self._tagged = False
        self._size = EMPTY_AGGREGATE_SIZE
        self._first_partition_key = None
        self._first_explicit_hash_key = None

    def __repr__(self) -> str:
        return f"AggregateBuilder(<{len(self)} records, {self._size}/{self._max_bytes} bytes>)"


def single_aggregate_size(
    partition_key: str,
    data: bytes,
    explicit_hash_key: int | None = None,
    event_id: str | None = None,
    event_id_key: EventIdKey | None = None,
) -> int:
    """Exact encoded size of an aggregate holding just this record (plus its tags)."""
    builder = AggregateBuilder(EMPTY_AGGREGATE_SIZE + 1, event_id_key)
    return builder.size_with(partition_key, data, explicit_hash_key, event_id)


def is_aggregated(data: bytes) -> bool:
    """Cheap test on the magic prefix only; :func:`deaggregate` also checks the MD5."""
    return len(data) > EMPTY_AGGREGATE_SIZE and data[:4] == MAGIC


_UserFields = tuple[str, bytes, int | None, str | None, str | None]
_EVENT_ID_TAG_BYTES: Final = EVENT_ID_TAG.encode("ascii")

DEFAULT_MAX_USER_RECORDS: Final = 10_000
"""Default cap on user records per consumed aggregate (a KPL-default 50 KiB aggregate holds
at most ~8,500 one-byte records)."""


@dataclass(frozen=True, slots=True)
class DeaggregationPolicy:
    """How a consumer treats records that look like KPL aggregates; every default is safe.

    ``deaggregate``: expand valid aggregates into their user records.  ``False`` for streams
    fed with device bytes (IoT rules, third-party writers): every record is then one record,
    whatever its bytes look like.
    ``max_record_bytes``: the stream's maximum record size; an inner record (data plus
    partition key) over it refuses the aggregate.
    ``max_user_records``: more user records than this in one aggregate refuses it.
    An inner partition key over 256 characters always refuses it.  A refused aggregate is
    passed on whole as a :class:`~shardline.records.RefusedRecord`, which the pipeline
    dead-letters with the reason, so expansion never multiplies output beyond the bounds
    stated in docs/security.md.
    ``event_id_key``: the deployment's event-id key; only event ids whose MAC verifies with
    it become the records' identity.  ``None`` (the default): event ids are informational.
    """

    deaggregate: bool = True
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_user_records: int = DEFAULT_MAX_USER_RECORDS
    event_id_key: EventIdKey | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.max_record_bytes < 1:
            raise ConfigurationError("max_record_bytes must be at least 1")
        if self.max_user_records < 1:
            raise ConfigurationError("max_user_records must be at least 1")
        if self.event_id_key is not None and not isinstance(self.event_id_key, EventIdKey):
            raise ConfigurationError("event_id_key must be a shardline.eventid.EventIdKey")


_DEFAULT_POLICY: Final = DeaggregationPolicy()


def _tags_of(record: Any) -> tuple[str | None, str | None]:
    """(event id, event-id MAC) from a user record's tags.

    A tag value that is not UTF-8 comes out of the protobuf runtime as ``bytes``, not str:
    it is no event id (nothing Shardline writes), and read as one it broke every sink, dead
    letter and MAC check downstream of the record that carried it.
    """
    event_id: str | None = None
    mac: str | None = None
    for tag in record.tags[:]:
        if not tag.HasField("value") or type(tag.value) is not str:
            continue
        if tag.key == EVENT_ID_TAG and event_id is None:
            event_id = tag.value
        elif tag.key == EVENT_ID_MAC_TAG and mac is None:
            mac = tag.value
    return event_id, mac


_STR_ONLY: Final = frozenset({str})
_COPY_MAX_BYTES: Final = 8192
"""Aggregates up to this size are parsed from a copy of their body, larger ones from a view
(about 0.15 us less a 1 KiB aggregate; level from ~8 KiB, where the copy starts to cost)."""


def _parse_message(data: bytes) -> tuple[Any, list[str]] | None:
    """(message, partition-key table), ``None`` when ``data`` is not a valid aggregate (wrong
    magic or MD5, unparsable, keys not UTF-8)."""
    if not is_aggregated(data):
        return None
    # A small body is cheaper to copy than to view (no buffer export for the MD5 and the
    # parse); a large one is viewed, not copied.
    if len(data) <= _COPY_MAX_BYTES:
        body: bytes | memoryview = data[len(MAGIC) : -DIGEST_SIZE]
    else:
        body = memoryview(data)[len(MAGIC) : -DIGEST_SIZE]
    if _md5(body, usedforsecurity=False).digest() != data[-DIGEST_SIZE:]:
        return None
    try:
        message = AggregatedRecord.FromString(body)
        keys = message.partition_key_table[:]
    except (DecodeError, UnicodeDecodeError, ValueError):
        return None
    if not set(map(type, keys)) <= _STR_ONLY:
        return None  # upb hands proto2 strings that are not UTF-8 back as bytes
    return message, keys


def _may_be_tagged(data: bytes) -> bool:
    """Whether any record of the aggregate ``data`` may carry tags.

    Reading tags costs per record; an aggregate whose bytes never spell the tag's key has
    none to read (a payload that happens to contain it only costs the walk).  Readers of the
    payloads alone (:func:`aggregate_payloads`) never ask.
    """
    return data.find(_EVENT_ID_TAG_BYTES, len(MAGIC), len(data) - DIGEST_SIZE) >= 0


def _walk(message: Any, keys: list[str], tagged: bool) -> list[_UserFields] | None:
    """(partition key, data, explicit hash key, event id, event-id MAC) per user record of a
    parsed aggregate; ``None`` when a record's table index is out of range or an entry of the
    explicit-hash-key table is no hash key."""
    try:
        # Decimal text in 0..2**128-1, as the KPL writes it: int() also read " 5", "1_0" and
        # Arabic-Indic digits, and took "-5" and 2**200, keys no producer sent.
        hash_keys = [validate_explicit_hash_key(h) for h in message.explicit_hash_key_table[:]]
        if not hash_keys and not tagged:
            return [(keys[r.partition_key_index], r.data, None, None, None) for r in message.records[:]]
        out: list[_UserFields] = []
        for r in message.records[:]:
            event_id, mac = _tags_of(r) if tagged else (None, None)
            out.append(
                (
                    keys[r.partition_key_index],
                    r.data,
                    hash_keys[r.explicit_hash_key_index] if r.HasField("explicit_hash_key_index") else None,
                    event_id,
                    mac,
                )
            )
        return out
    except (DecodeError, UnicodeDecodeError, ValueError, IndexError):
        # A record that merely looks like an aggregate is passed on whole, as the KCL does.
        return None


def aggregate_payloads(data: bytes) -> list[bytes] | None:
    """The user records' data of a KPL aggregate, in order; ``None`` when ``data`` is not a
    valid aggregate (as :func:`deaggregate` decides).

    For readers that need the payloads alone (stream-bench's readers): one MD5 check and one
    protobuf parse per aggregate and one bytes object per record, no keys, tags or records.
    """
    parsed = _parse_message(data)
    if parsed is None:
        return None
    try:
        return [record.data for record in parsed[0].records[:]]
    except (DecodeError, ValueError):
        return None


def _parse(data: bytes) -> list[_UserFields] | None:
    """(partition key, data, explicit hash key, event id, event-id MAC) per user record.

    ``None`` means ``data`` is not a valid aggregate.
    """
    parsed = _parse_message(data)
    return None if parsed is None else _walk(*parsed, _may_be_tagged(data))


def deaggregate(data: bytes) -> list[UserRecord] | None:
    """The user records of a KPL aggregate, or ``None`` when ``data`` is not a valid one.

    ``None`` covers a wrong magic, a bad MD5 and an unparsable body alike: the caller then
    treats ``data`` as one plain record, so nothing is dropped.
    """
    fields = _parse(data)
    if fields is None:
        return None
    return [
        UserRecord(key, payload, ehk, index, event_id)
        for index, (key, payload, ehk, event_id, _) in enumerate(fields)
    ]


def _count_refusal(count: int, policy: DeaggregationPolicy) -> str | None:
    """Why an aggregate of ``count`` user records must not be expanded, or ``None``."""
    if count > policy.max_user_records:
        return f"aggregate holds {count} user records, over the cap of {policy.max_user_records}"
    return None


def _refusal(fields: list[_UserFields], total_bytes: int, policy: DeaggregationPolicy) -> str | None:
    """Why an aggregate (within the record count, checked before it was walked) must not be
    expanded (no payload in the text), or ``None``."""
    longest = max((len(key) for key, *_ in fields), default=0)
    if longest > PARTITION_KEY_MAX_CHARS:
        return f"inner partition key of {longest} characters, over {PARTITION_KEY_MAX_CHARS}"
    limit = policy.max_record_bytes
    if total_bytes > limit - 4 * PARTITION_KEY_MAX_CHARS:
        # only an aggregate near the limit can hold an inner record over it
        for index, (key, payload, *_) in enumerate(fields):
            size = len(payload) + len(key.encode("utf-8"))
            if size > limit:
                return f"inner record {index} of {size} bytes, over the stream's maximum of {limit}"
    return None


class Expansion(NamedTuple):
    """What :func:`expand_aggregate` made of one Kinesis record's bytes.

    ``records``: the user records kept (after ``first_sub`` skipped ones); ``outside``: how
    many of them hash outside the ``hash_range`` given; ``refusal``: why the aggregate must not
    be expanded (then ``records`` is empty and the caller passes the record on whole).
    """

    records: list[ConsumedRecord]
    outside: int = 0
    refusal: str | None = None


def _fast_path_safe(message: Any, keys: list[str], total_bytes: int, policy: DeaggregationPolicy) -> bool:
    """True when no bound of ``policy`` can refuse this aggregate (checked per aggregate, not per
    record): few enough records, every key in the table short, and too small to hold an inner
    record over the stream's maximum."""
    return (
        len(message.records) <= policy.max_user_records
        and max(map(len, keys), default=0) <= PARTITION_KEY_MAX_CHARS
        and total_bytes <= policy.max_record_bytes - 4 * PARTITION_KEY_MAX_CHARS
    )


def expand_aggregate(
    data: bytes,
    *,
    stream: str,
    shard_id: str,
    sequence_number: str,
    arrival_time: datetime | None = None,
    headers: Mapping[str, bytes] | None = None,
    policy: DeaggregationPolicy | None = None,
    first_sub: int = 0,
    hash_range: KeysInRange | None = None,
) -> Expansion | None:
    """The user records of the KPL aggregate ``data`` read at ``sequence_number``, or ``None``
    when ``data`` is not a valid aggregate (the caller keeps it as one plain record).

    The consumer's hot path: the common aggregate (no explicit hash keys, no tags, within the
    policy's bounds) is walked once, building each :class:`ConsumedRecord` from a draft (see
    :mod:`shardline.records`) and checking the hash range (``hash_range``) per
    partition-key table entry, not per record.  Other
    aggregates take the general path.  ``first_sub`` drops the sub-records before it (a
    resumed read); only kept records are range checked.  Results equal
    :func:`deaggregate_consumed`'s.
    """
    policy = _DEFAULT_POLICY if policy is None else policy
    parsed = _parse_message(data)
    if parsed is None:
        return None
    message, keys = parsed
    tagged = _may_be_tagged(data)
    if message.explicit_hash_key_table or tagged or not _fast_path_safe(message, keys, len(data), policy):
        # Refused by its count before it is walked: walking a 1 MiB aggregate of 174,000 empty
        # records, only to refuse it, took ~0.3 s and ~30 MB (a tuple and a bytes per record).
        refusal = _count_refusal(len(message.records), policy)
        if refusal is not None:
            return Expansion([], 0, refusal)
        fields = _walk(message, keys, tagged)
        if fields is None:
            return None
        return _expand_general(
            fields,
            len(data),
            stream,
            shard_id,
            sequence_number,
            arrival_time,
            headers,
            policy,
            first_sub,
            hash_range,
        )
    try:
        records = message.records[first_sub:]
        out: list[ConsumedRecord] = []
        append = out.append
        record_draft, position_draft = ConsumedRecordDraft, KinesisPositionDraft
        record_class, position_class = ConsumedRecord, KinesisPosition
        sub = first_sub
        for user in records:
            position = position_draft()
            position.stream = stream
            position.shard_id = shard_id
            position.sequence_number = sequence_number
            position.sub_sequence_number = sub
            position.__class__ = position_class  # type: ignore[assignment]
            record = record_draft()
            record.data = user.data
            record.partition_key = keys[user.partition_key_index]
            record.position = position  # type: ignore[assignment]
            record.arrival_time = arrival_time
            record.explicit_hash_key = None
            record.event_id = None
            record.headers = headers
            record.event_id_verified = False
            record.__class__ = record_class  # type: ignore[assignment]
            append(record)  # type: ignore[arg-type]
            sub += 1
    except (DecodeError, UnicodeDecodeError, ValueError, IndexError):
        # A record that merely looks like an aggregate is passed on whole, as the KCL does.
        return None
    outside = 0
    if hash_range is not None and out and not hash_range.all_inside(keys):
        contains = hash_range.contains
        inside = [contains(key) for key in keys]
        outside = sum(1 for user in records if not inside[user.partition_key_index])
    return Expansion(out, outside)


def _expand_general(
    fields: list[_UserFields],
    total_bytes: int,
    stream: str,
    shard_id: str,
    sequence_number: str,
    arrival_time: datetime | None,
    headers: Mapping[str, bytes] | None,
    policy: DeaggregationPolicy,
    first_sub: int,
    hash_range: KeysInRange | None,
) -> Expansion | None:
    """:func:`expand_aggregate` for aggregates with explicit hash keys or tags, or near a bound."""
    refusal = _refusal(fields, total_bytes, policy)
    if refusal is not None:
        return Expansion([], 0, refusal)
    key = policy.event_id_key
    out = [
        ConsumedRecord(
            payload,
            partition_key,
            KinesisPosition(stream, shard_id, sequence_number, index),
            arrival_time,
            ehk,
            event_id,
            headers,
            event_id is not None and key is not None and key.accepts(event_id, payload, mac),
        )
        for index, (partition_key, payload, ehk, event_id, mac) in enumerate(fields)
        if index >= first_sub
    ]
    outside = 0
    if hash_range is not None:
        for record in out:
            ehk = record.explicit_hash_key
            if not (hash_range.contains(record.partition_key) if ehk is None else hash_range.holds(ehk)):
                outside += 1
    return Expansion(out, outside)


def deaggregate_consumed(
    record: ConsumedRecord, policy: DeaggregationPolicy | None = None
) -> list[ConsumedRecord]:
    """Expand a consumed Kinesis record into its user records; plain records pass unchanged.

    Each user record keeps the aggregate's sequence number and gets its index as the
    sub-sequence number, so checkpoints can resume in the middle of an aggregate.  A record
    whose ``event_id`` tag is set gets it as :attr:`ConsumedRecord.event_id`; it becomes the
    identity idempotent sinks key on only when ``policy.event_id_key`` verifies its MAC.
    An aggregate over the policy's bounds comes back whole as one
    :class:`~shardline.records.RefusedRecord` (dead-lettered by the pipeline).
    """
    policy = _DEFAULT_POLICY if policy is None else policy
    position = record.position
    if not policy.deaggregate or not isinstance(position, KinesisPosition):
        return [record]
    expansion = expand_aggregate(
        record.data,
        stream=position.stream,
        shard_id=position.shard_id,
        sequence_number=position.sequence_number,
        arrival_time=record.arrival_time,
        headers=record.headers,
        policy=policy,
    )
    if expansion is None:
        return [record]
    if expansion.refusal is not None:
        return [RefusedRecord(record, AggregateRefusedError(expansion.refusal))]
    return expansion.records
