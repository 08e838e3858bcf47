"""The Kinesis producer's configuration: one frozen, validated value instead of many keyword arguments.

Defaults follow the KPL where it has one (100 ms linger, 50 KiB aggregates, 30 s record TTL)
and the service quotas in :mod:`shardline.limits` everywhere else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from shardline.errors import ConfigurationError
from shardline.eventid import EventIdKey
from shardline.limits import (
    KPL_DEFAULT_AGGREGATE_BYTES,
    PUT_RECORDS_MAX_BYTES,
    PUT_RECORDS_MAX_ENTRIES,
    MiB,
)

__all__ = ["ProducerConfig"]


@dataclass(frozen=True, slots=True)
class ProducerConfig:
    """How a :class:`producers.KinesisProducer` batches, aggregates, paces and retries.

    Attributes:
        linger: seconds a buffered record may wait for more records before its aggregate and
            its PutRecords request are sent (a full request goes at once, as in the KPL).
            Higher means fewer, fuller requests; lower means less latency.
        aggregate: pack many user records into one Kinesis entry (KPL format).  Never mixes
            shards.  Consumers must de-aggregate (the KCL and Shardline's consumers do).
        aggregate_max_bytes: size cap of one aggregate (the KPL's 50 KiB by default); at most
            the stream's max record size.
        max_batch_entries / max_batch_bytes: PutRecords request caps (500 entries, 5 MiB).
        buffer_max_records / buffer_max_bytes: how much may be buffered or in flight before
            ``send()`` waits (or raises :class:`~shardline.errors.BufferFullError` when
            ``block_when_full`` is False).
        block_when_full: back-pressure by waiting (True) or by raising (False).
        admission: what ``send()`` waits for.  ``"drain-rate"`` (the default): also a byte
            limit from the measured drain rate, so that what is buffered can be delivered
            within ``admission_ttl_fraction`` of ``record_ttl``; a slow or throttled endpoint
            then makes ``send()`` wait instead of records failing with DeliveryError when
            their TTL runs out (:mod:`producers.drain`).  The limit is never below one full
            request (``max_batch_bytes``), and is that until the first request answers: a
            producer holding no more than that is never limited.  ``"caps"``: only the
            buffer caps (records that cannot be delivered in time fail).  The default because
            it removed those failures at a slow endpoint and cost no throughput at full speed
            (docs/producer.md, "Admission by drain rate").
        admission_ttl_fraction: the share of ``record_ttl`` the buffered bytes may take to be
            delivered, in (0, 1]; the rest is a margin for an estimate that lags a slowdown,
            retries and the request the record ends up in.
        rate_limit_percent: per-shard pacing at this percentage of 1 MiB/s and 1000 records/s;
            ``None`` disables pacing (throttles are then only retried).
        max_in_flight: concurrent PutRecords requests.
        max_in_flight_bytes: entry bytes of the PutRecords requests in flight together (one
            request may always go).  A request in flight also holds its serialised body
            (base64 in JSON, 4/3 of its entry bytes, and the socket's copy of what is not yet
            sent), so this much of ``buffer_max_bytes`` (at most half of it) is kept for the
            bodies: records may hold the rest (:attr:`record_buffer_bytes`).
        max_attempts: tries per entry before its records fail with DeliveryError.
        record_ttl: seconds from ``send()`` after which an undelivered record fails.
        initial_backoff / max_backoff: exponential backoff with full jitter between retries.
        ordered: keep per-partition-key order even across retries (one in-flight request per
            shard, each key at most once per request).
        max_record_bytes: largest record (data + key) accepted; ``None`` asks the stream
            (DescribeStreamSummary's MaxRecordSizeInKiB) and falls back to 1 MiB.
        shard_refresh_interval: seconds between ListShards checks for splits and merges;
            unexpected shard ids in PutRecords results trigger a refresh at once.
        event_id_key: signs every event id (an HMAC next to it in the KPL tags) so consumers
            holding the same key trust it as the record's identity; without it consumers
            key records by position (docs/security.md).  Never shown in ``repr``.
    """

    linger: float = 0.1
    aggregate: bool = True
    aggregate_max_bytes: int = KPL_DEFAULT_AGGREGATE_BYTES
    max_batch_entries: int = PUT_RECORDS_MAX_ENTRIES
    max_batch_bytes: int = PUT_RECORDS_MAX_BYTES
    buffer_max_records: int = 200_000
    buffer_max_bytes: int = 64 * MiB
    block_when_full: bool = True
    admission: Literal["caps", "drain-rate"] = "drain-rate"
    admission_ttl_fraction: float = 0.5
    rate_limit_percent: float | None = 100.0
    max_in_flight: int = 8
    max_in_flight_bytes: int = 16 * MiB
    max_attempts: int = 10
    record_ttl: float = 30.0
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    ordered: bool = False
    max_record_bytes: int | None = None
    shard_refresh_interval: float = 60.0
    event_id_key: EventIdKey | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.linger < 0:
            problems.append("linger must be >= 0")
        if not 0 < self.max_batch_entries <= PUT_RECORDS_MAX_ENTRIES:
            problems.append(f"max_batch_entries must be in 1..{PUT_RECORDS_MAX_ENTRIES}")
        if not 0 < self.max_batch_bytes <= PUT_RECORDS_MAX_BYTES:
            problems.append(f"max_batch_bytes must be in 1..{PUT_RECORDS_MAX_BYTES}")
        if self.aggregate_max_bytes < 1024:
            problems.append("aggregate_max_bytes must be >= 1024")
        if self.buffer_max_records < 1 or self.buffer_max_bytes < 1:
            problems.append("buffer caps must be positive")
        if self.admission not in ("caps", "drain-rate"):
            problems.append("admission must be 'caps' or 'drain-rate'")
        if not 0 < self.admission_ttl_fraction <= 1:
            problems.append("admission_ttl_fraction must be in (0, 1]")
        if self.rate_limit_percent is not None and not 0 < self.rate_limit_percent <= 100:
            problems.append("rate_limit_percent must be in (0, 100] or None")
        if self.max_in_flight < 1:
            problems.append("max_in_flight must be >= 1")
        if self.max_in_flight_bytes < 1:
            problems.append("max_in_flight_bytes must be >= 1")
        if self.max_attempts < 1:
            problems.append("max_attempts must be >= 1")
        if self.record_ttl <= 0:
            problems.append("record_ttl must be > 0")
        if not 0 <= self.initial_backoff <= self.max_backoff:
            problems.append("need 0 <= initial_backoff <= max_backoff")
        if self.max_record_bytes is not None and self.max_record_bytes < 1:
            problems.append("max_record_bytes must be positive")
        if self.shard_refresh_interval <= 0:
            problems.append("shard_refresh_interval must be > 0")
        if self.event_id_key is not None and not isinstance(self.event_id_key, EventIdKey):
            problems.append("event_id_key must be a shardline.eventid.EventIdKey")
        if problems:
            raise ConfigurationError("; ".join(problems))

    @property
    def record_buffer_bytes(self) -> int:
        """Bytes records may hold: ``buffer_max_bytes`` less the room kept for request bodies."""
        return self.buffer_max_bytes - min(self.max_in_flight_bytes, self.buffer_max_bytes // 2)

    def with_options(self, **options: Any) -> ProducerConfig:
        """A copy with some fields changed; unknown names are a ConfigurationError."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigurationError(f"unknown producer option(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **options)
