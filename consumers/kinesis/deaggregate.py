"""The de-aggregation step: API records in, user records (with positions) out.

KPL aggregates are expanded with the shared codec, each user record keeping the aggregate's
sequence number and its own sub-sequence number (its index in the aggregate), which is what
checkpoints and idempotent sinks key on.  The :class:`~shardline.aggregation.DeaggregationPolicy`
decides whether aggregates are expanded at all, refuses (passes on whole, to be
dead-lettered) an aggregate over its expansion bounds, and whether an event id is trusted
as identity (docs/security.md).  A sub-record whose hash key falls outside the
shard's range (the producer aggregated across a split) is still delivered - dropping it would
lose data - and counted in ``records_outside_shard_range``.  Plain records are not range
checked: GetRecords does not return a record's ExplicitHashKey, so their partition key may
legitimately hash elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from consumers.kinesis.positions import StartPosition
from shardline import metrics_events as events
from shardline.aggregation import _DEFAULT_POLICY, DeaggregationPolicy, expand_aggregate, is_aggregated
from shardline.errors import AggregateRefusedError
from shardline.gcpause import collector_paused
from shardline.metrics import MetricsObserver
from shardline.records import (
    ConsumedRecord,
    ConsumedRecordDraft,
    KinesisPosition,
    KinesisPositionDraft,
    RefusedRecord,
)
from shardline.shardmath import KeysInRange, ShardInfo

__all__ = ["PROMOTE_MIN_BYTES", "records_from_api"]

PROMOTE_MIN_BYTES = 256 * 1024
"""Data in a response from which its records are built for the collector's oldest generation.

Below it the young collection that promotion starts with (up to a few hundred microseconds,
whatever the batch) would cost more than it saves."""


def _large(raw_records: Iterable[Mapping[str, Any]]) -> bool:
    """Whether ``raw_records`` (when it can be read twice) holds PROMOTE_MIN_BYTES of data."""
    if not isinstance(raw_records, Sequence):
        return False
    total = 0
    for raw in raw_records:
        total += len(raw["Data"])
        if total >= PROMOTE_MIN_BYTES:
            return True
    return False


def records_from_api(
    raw_records: Iterable[Mapping[str, Any]],
    *,
    stream: str,
    shard_id: str,
    shard: ShardInfo | None = None,
    skip: StartPosition | None = None,
    observer: MetricsObserver | None = None,
    policy: DeaggregationPolicy | None = None,
) -> list[ConsumedRecord]:
    """Convert GetRecords / SubscribeToShard records of one shard into ConsumedRecords.

    ``skip`` (an AT_SEQUENCE_NUMBER position with ``skip_through_sub_sequence``) drops the
    already-processed sub-records of the aggregate a resumed reader starts in.  Aggregates
    are expanded by :func:`~shardline.aggregation.expand_aggregate`, which builds the user
    records straight from the parsed aggregate; the aggregate itself becomes a record only
    when it is passed on whole (not an aggregate, corrupt, or refused by the policy).  The
    batch is built with the cyclic collector paused (:mod:`shardline.gcpause`); a large one
    (at least ``PROMOTE_MIN_BYTES`` of data) goes straight to the collector's oldest
    generation, so the young collections a consumer's own work triggers do not walk it.
    """
    out: list[ConsumedRecord] = []
    with collector_paused(promote=_large(raw_records)):
        outside = _convert(
            raw_records,
            out,
            stream,
            shard_id,
            shard,
            skip if skip is not None and skip.skip_through_sub_sequence is not None else None,
            _DEFAULT_POLICY if policy is None else policy,
        )
    if outside and observer is not None:
        observer.on_event(events.RECORDS_OUTSIDE_SHARD_RANGE, float(outside), stream=stream, shard=shard_id)
    return out


def _convert(
    raw_records: Iterable[Mapping[str, Any]],
    out: list[ConsumedRecord],
    stream: str,
    shard_id: str,
    shard: ShardInfo | None,
    skip: StartPosition | None,
    policy: DeaggregationPolicy,
) -> int:
    """Append the records of ``raw_records`` to ``out``; the number outside the shard's range."""
    expanding = policy.deaggregate
    # per call: the keys of one response repeat across its aggregates; the MD5s themselves are
    # remembered process-wide (bounded) by cached_partition_key_hash
    hash_range = None if shard is None else KeysInRange(shard.starting_hash_key, shard.ending_hash_key)
    outside = 0
    for raw in raw_records:
        data: bytes = raw["Data"]
        sequence_number: str = raw["SequenceNumber"]
        arrival: datetime | None = raw.get("ApproximateArrivalTimestamp")
        first_sub = 0 if skip is None else skip.first_kept_sub_sequence(sequence_number)
        if expanding and is_aggregated(data):
            expansion = expand_aggregate(
                data,
                stream=stream,
                shard_id=shard_id,
                sequence_number=sequence_number,
                arrival_time=arrival,
                policy=policy,
                first_sub=first_sub,
                hash_range=hash_range,
            )
            if expansion is not None and expansion.refusal is None:
                out.extend(expansion.records)
                outside += expansion.outside
                continue
            if expansion is not None and expansion.refusal is not None:
                # refused: passed on whole (to be dead-lettered), at sub-sequence 0 of its record
                if first_sub:
                    continue
                refused = RefusedRecord(
                    _whole(raw, stream, shard_id, arrival), AggregateRefusedError(expansion.refusal)
                )
                if hash_range is not None and not hash_range.contains(refused.partition_key):
                    outside += 1
                out.append(refused)
                continue
        # a plain record (or a corrupt aggregate, kept whole)
        if not first_sub:
            out.append(_whole(raw, stream, shard_id, arrival))
    return outside


def _whole(raw: Mapping[str, Any], stream: str, shard_id: str, arrival: datetime | None) -> ConsumedRecord:
    """The Kinesis record as it came: a plain record, or an aggregate passed on whole.

    Built from drafts (:class:`~shardline.records.ConsumedRecordDraft`), as
    :func:`~shardline.aggregation.expand_aggregate` builds user records: a stream of plain
    records gets one of these per record.
    """
    position = KinesisPositionDraft()
    position.stream = stream
    position.shard_id = shard_id
    position.sequence_number = raw["SequenceNumber"]
    position.sub_sequence_number = 0
    position.__class__ = KinesisPosition  # type: ignore[assignment]
    record = ConsumedRecordDraft()
    record.data = raw["Data"]
    record.partition_key = raw["PartitionKey"]
    record.position = position  # type: ignore[assignment]
    record.arrival_time = arrival
    record.explicit_hash_key = None
    record.event_id = None
    record.headers = None
    record.event_id_verified = False
    record.__class__ = ConsumedRecord  # type: ignore[assignment]
    return record  # type: ignore[return-value]
