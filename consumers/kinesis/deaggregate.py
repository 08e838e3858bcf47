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

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from consumers.kinesis.positions import StartPosition
from shardline import metrics_events as events
from shardline.aggregation import DeaggregationPolicy, deaggregate_consumed, is_aggregated
from shardline.metrics import MetricsObserver
from shardline.records import ConsumedRecord, KinesisPosition
from shardline.shardmath import ShardInfo, partition_key_hash

__all__ = ["records_from_api"]


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
    already-processed sub-records of the aggregate a resumed reader starts in.
    """
    out: list[ConsumedRecord] = []
    outside = 0
    for raw in raw_records:
        data: bytes = raw["Data"]
        arrival: datetime | None = raw.get("ApproximateArrivalTimestamp")
        record = ConsumedRecord(
            data=data,
            partition_key=raw["PartitionKey"],
            position=KinesisPosition(stream, shard_id, raw["SequenceNumber"]),
            arrival_time=arrival,
        )
        subs = deaggregate_consumed(record, policy) if is_aggregated(data) else [record]
        if len(subs) == 1 and subs[0] is record:  # a plain record (or a corrupt aggregate, kept whole)
            if skip is None or not skip.skips(raw["SequenceNumber"], 0):
                out.append(record)
            continue
        for sub in subs:
            position = sub.position
            assert isinstance(position, KinesisPosition)
            if skip is not None and skip.skips(position.sequence_number, position.sub_sequence_number):
                continue
            if shard is not None:
                hash_key = (
                    sub.explicit_hash_key
                    if sub.explicit_hash_key is not None
                    else partition_key_hash(sub.partition_key)
                )
                if not shard.contains(hash_key):
                    outside += 1
            out.append(sub)
    if outside and observer is not None:
        observer.on_event(events.RECORDS_OUTSIDE_SHARD_RANGE, float(outside), stream=stream, shard=shard_id)
    return out
