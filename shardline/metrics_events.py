"""The catalogue of every metrics event Shardline reports: name, kind, unit, dimensions.

Emitters pass these constants to ``observer.on_event(...)`` (``on_event(RECORDS_SENT, n,
stream=...)``), never a string literal; exporters read :data:`CATALOGUE` to know whether a
value is a count to add up, a gauge to sample or a distribution to keep for percentiles, and
in which unit.  Nothing is inferred from a name's suffix.  ``docs/metrics.md`` is checked
against this table by a test, and another test fails if an emitter uses a name that is not
here.

Which thread an observer is called on (observers must be thread-safe when one instance is
shared by several components):

* Kinesis producer, readers, sources, pipeline and sinks: the event loop's thread.
* Kafka producer: the event loop's thread for most reports, but librdkafka's delivery thread
  may call it too (``kafka_client_error`` comes from ``error_cb`` on whichever thread polls,
  ``kafka_callback_errors`` from ``oauth_cb`` on librdkafka's own background thread).
* Kafka source: the event loop's thread, the thread of its consumer executor for
  rebalance callbacks and client errors, and librdkafka's own background thread for
  ``kafka_callback_errors`` (an MSK IAM token refresh that failed, from ``oauth_cb``).

Observers are wrapped with :func:`shardline.metrics.guard_observer`: one that raises is
logged once and counted, never allowed to stop the component that reported the event.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = ["CATALOGUE", "MetricEvent", "MetricKind", "Unit", "event_for", "markdown_table", "sink_records"]


class MetricKind(enum.Enum):
    """How an exporter aggregates an event's values over an export interval."""

    COUNTER = "counter"
    """Summed."""
    GAUGE = "gauge"
    """Sampled: the distribution of the samples (and so the maximum) matters."""
    DISTRIBUTION = "distribution"
    """Every value kept (in bounded buckets), for percentiles."""


class Unit(enum.Enum):
    """CloudWatch unit names (OpenTelemetry units are derived from them)."""

    COUNT = "Count"
    BYTES = "Bytes"
    MILLISECONDS = "Milliseconds"
    SECONDS = "Seconds"
    NONE = "None"


@dataclass(frozen=True, slots=True)
class MetricEvent:
    """One event: what it counts, how to aggregate it, and which dimensions come with it."""

    name: str
    kind: MetricKind
    unit: Unit
    dimensions: tuple[str, ...]
    emitter: str
    meaning: str
    cloudwatch_name: str = ""

    def __post_init__(self) -> None:
        if not self.cloudwatch_name:
            pascal = "".join(part[:1].upper() + part[1:] for part in self.name.split("_") if part)
            object.__setattr__(self, "cloudwatch_name", pascal)


# --- Kinesis producer -----------------------------------------------------------------------
RECORDS_SENT: Final = "records_sent"
BYTES_SENT: Final = "bytes_sent"
KINESIS_ENTRIES: Final = "kinesis_entries"
BATCHES: Final = "batches"
AGGREGATION_RATIO: Final = "aggregation_ratio"
SEND_TO_ACK_LATENCY: Final = "send_to_ack_latency"
SHARD_RECORDS: Final = "shard_records"
THROTTLES: Final = "throttles"
RETRIES: Final = "retries"
RECORDS_FAILED: Final = "records_failed"
BUFFER_FULL: Final = "buffer_full"
SEND_WAITS: Final = "send_waits"
ADMISSION_BYTES: Final = "admission_bytes"
REQUEST_ERRORS: Final = "request_errors"
RECORDS_REROUTED: Final = "records_rerouted"
SHARD_MAP_CHANGES: Final = "shard_map_changes"
# --- Kafka producer -------------------------------------------------------------------------
RECORDS_DELIVERED: Final = "records_delivered"
KAFKA_QUEUE_FULL: Final = "kafka_queue_full"
KAFKA_CLIENT_ERROR: Final = "kafka_client_error"
KAFKA_CALLBACK_ERRORS: Final = "kafka_callback_errors"
# --- Kinesis readers and source -------------------------------------------------------------
RECORDS_READ: Final = "records_read"
GET_RECORDS_CALLS: Final = "get_records_calls"
GET_RECORDS_THROTTLED: Final = "get_records_throttled"
GET_RECORDS_RETRIES: Final = "get_records_retries"
ITERATOR_EXPIRED: Final = "iterator_expired"
MILLIS_BEHIND_LATEST: Final = "millis_behind_latest"
SUBSCRIPTIONS: Final = "subscriptions"
SUBSCRIBE_RETRIES: Final = "subscribe_retries"
SUBSCRIBE_RESOURCE_IN_USE: Final = "subscribe_resource_in_use"
RECORDS_OUTSIDE_SHARD_RANGE: Final = "records_outside_shard_range"
SHARDS_STARTED: Final = "shards_started"
SHARDS_FINISHED: Final = "shards_finished"
LEASES_LOST: Final = "leases_lost"
# --- Kafka source and replay ----------------------------------------------------------------
KAFKA_PARTITIONS_ASSIGNED: Final = "kafka_partitions_assigned"
KAFKA_PARTITIONS_REVOKED: Final = "kafka_partitions_revoked"
KAFKA_CHECKPOINT_AFTER_REVOKE: Final = "kafka_checkpoint_after_revoke"
KAFKA_CONSUMER_ERROR: Final = "kafka_consumer_error"
KAFKA_PAUSE_FAILED: Final = "kafka_pause_failed"
KAFKA_LAG_MESSAGES: Final = "kafka_lag_messages"
# --- pipeline -------------------------------------------------------------------------------
RECORDS_IN: Final = "records_in"
RECORDS_OUT: Final = "records_out"
ITERATOR_AGE_MS: Final = "iterator_age_ms"
DEAD_LETTERED: Final = "dead_lettered"
CHECKPOINT_LAG: Final = "checkpoint_lag"
CHECKPOINT_ERRORS: Final = "checkpoint_errors"
CHECKPOINTS_WRITTEN: Final = "checkpoints_written"
# --- sinks ----------------------------------------------------------------------------------
SINK_RECORDS_WRITTEN: Final = "sink_records_written"
SINK_RECORDS_DUPLICATE: Final = "sink_records_duplicate"
SINK_RECORDS_RETRY: Final = "sink_records_retry"
SINK_RECORDS_THROTTLED: Final = "sink_records_throttled"
SINK_RECORDS_REJECTED: Final = "sink_records_rejected"
SINK_RECORDS_UNAVAILABLE: Final = "sink_records_unavailable"
SINK_RECORDS_CALL_FAILED: Final = "sink_records_call_failed"
SINK_RECORDS_UNSENT: Final = "sink_records_unsent"


def sink_records(outcome: str) -> str:
    """The event counting a sink's entries with ``outcome`` (``written``, ``duplicate``...)."""
    name = f"sink_records_{outcome}"
    if name not in CATALOGUE:
        raise KeyError(f"no metrics event for sink outcome {outcome!r}")
    return name


_C, _G, _D = MetricKind.COUNTER, MetricKind.GAUGE, MetricKind.DISTRIBUTION
_N, _B, _MS, _S, _R = Unit.COUNT, Unit.BYTES, Unit.MILLISECONDS, Unit.SECONDS, Unit.NONE
_KP, _KF, _RD, _SRC, _KS, _PL, _SK = (
    "Kinesis producer",
    "Kafka producer",
    "Kinesis readers",
    "Kinesis source",
    "Kafka source",
    "pipeline",
    "sinks",
)
_STREAM, _SHARD, _TOPIC, _SINK = ("stream",), ("stream", "shard"), ("topic",), ("sink",)
_PARTITION = ("stream", "topic", "partition")
"""The pipeline's: where the partition lives (a Kinesis stream or a Kafka topic), and which one."""

_EVENTS: tuple[MetricEvent, ...] = (
    MetricEvent(RECORDS_SENT, _C, _N, _STREAM, _KP, "user records acknowledged by Kinesis"),
    MetricEvent(BYTES_SENT, _C, _B, _STREAM, _KP, "user bytes (data + key) acknowledged"),
    MetricEvent(KINESIS_ENTRIES, _C, _N, _STREAM, _KP, "PutRecords entries written (aggregates count once)"),
    MetricEvent(BATCHES, _C, _N, _STREAM, _KP, "PutRecords calls answered"),
    MetricEvent(AGGREGATION_RATIO, _G, _R, _STREAM, _KP, "user records per Kinesis entry, per call"),
    MetricEvent(SEND_TO_ACK_LATENCY, _D, _S, _STREAM, _KP, "from buffering a record to its acknowledgement"),
    MetricEvent(SHARD_RECORDS, _C, _N, _SHARD, _KP, "user records acknowledged per shard"),
    MetricEvent(THROTTLES, _C, _N, _STREAM, _KP, "entries or calls refused for throughput"),
    MetricEvent(
        RETRIES,
        _C,
        _N,
        (*_STREAM, *_SINK, "error_type"),
        _KP + ", pipeline",
        "entries requeued (producer) or writes to a sink retried (pipeline; error_type: the cause's class)",
    ),
    MetricEvent(RECORDS_FAILED, _C, _N, _STREAM + _TOPIC, _KP + ", " + _KF, "records whose future failed"),
    MetricEvent(BUFFER_FULL, _C, _N, _STREAM, _KP, "sends refused because the buffer was full"),
    MetricEvent(
        SEND_WAITS, _C, _N, _STREAM, _KP, "sends that waited for room (buffer caps or drain-rate admission)"
    ),
    MetricEvent(
        ADMISSION_BYTES,
        _G,
        _B,
        _STREAM,
        _KP,
        "bytes admitted before send() waits, when drain-rate admission moves it",
    ),
    MetricEvent(REQUEST_ERRORS, _C, _N, (*_STREAM, "code"), _KP, "PutRecords calls that failed whole"),
    MetricEvent(RECORDS_REROUTED, _C, _N, _STREAM, _KP, "records re-sent after landing on a changed shard"),
    MetricEvent(
        SHARD_MAP_CHANGES,
        _C,
        _N,
        (*_STREAM, "split_entries"),
        _KP,
        "shard maps replaced after a split or merge (split_entries: queued aggregates re-planned)",
    ),
    MetricEvent(RECORDS_DELIVERED, _C, _N, _TOPIC, _KF, "messages acknowledged by the broker"),
    MetricEvent(KAFKA_QUEUE_FULL, _C, _N, _TOPIC, _KF, "sends that waited for librdkafka's queue"),
    MetricEvent(
        KAFKA_CLIENT_ERROR,
        _C,
        _N,
        (*_TOPIC, "error"),
        _KF + ", " + _KS,
        "librdkafka error_cb reports; failed offset commits",
    ),
    MetricEvent(
        KAFKA_CALLBACK_ERRORS,
        _C,
        _N,
        (*_TOPIC, "error"),
        _KF + ", " + _KS,
        "client callbacks or delivery reports that raised",
    ),
    MetricEvent(RECORDS_READ, _C, _N, _SHARD, _RD, "records read from a shard"),
    MetricEvent(GET_RECORDS_CALLS, _C, _N, _SHARD, _RD, "GetRecords calls made"),
    MetricEvent(GET_RECORDS_THROTTLED, _C, _N, _SHARD, _RD, "GetRecords calls throttled"),
    MetricEvent(GET_RECORDS_RETRIES, _C, _N, _SHARD, _RD, "GetRecords calls failed transiently"),
    MetricEvent(ITERATOR_EXPIRED, _C, _N, _SHARD, _RD, "shard iterators that expired and were renewed"),
    MetricEvent(
        MILLIS_BEHIND_LATEST,
        _G,
        _MS,
        _SHARD,
        _RD,
        "how far the reader is behind the tip",
        cloudwatch_name="IteratorAgeMilliseconds",
    ),
    MetricEvent(SUBSCRIPTIONS, _C, _N, _SHARD, _RD, "SubscribeToShard subscriptions opened"),
    MetricEvent(SUBSCRIBE_RETRIES, _C, _N, _SHARD, _RD, "subscriptions retried after an error"),
    MetricEvent(SUBSCRIBE_RESOURCE_IN_USE, _C, _N, _SHARD, _RD, "subscriptions refused while one was open"),
    MetricEvent(
        RECORDS_OUTSIDE_SHARD_RANGE, _C, _N, _SHARD, _RD, "sub-records dropped: hash key not the shard's"
    ),
    MetricEvent(SHARDS_STARTED, _C, _N, _SHARD, _SRC, "shards this worker started reading"),
    MetricEvent(SHARDS_FINISHED, _C, _N, _SHARD, _SRC, "shards read to their end"),
    MetricEvent(LEASES_LOST, _C, _N, _SHARD, _SRC, "leases taken over by another worker"),
    MetricEvent(KAFKA_PARTITIONS_ASSIGNED, _C, _N, (), _KS, "partitions assigned by a rebalance"),
    MetricEvent(KAFKA_PARTITIONS_REVOKED, _C, _N, (), _KS, "partitions revoked by a rebalance"),
    MetricEvent(
        KAFKA_CHECKPOINT_AFTER_REVOKE, _C, _N, ("partition",), _KS, "checkpoints skipped: partition gone"
    ),
    MetricEvent(KAFKA_CONSUMER_ERROR, _C, _N, ("error",), _KS, "non-fatal errors in consumed messages"),
    MetricEvent(KAFKA_PAUSE_FAILED, _C, _N, (), _KS, "partitions a replay could not pause"),
    MetricEvent(
        KAFKA_LAG_MESSAGES,
        _G,
        _N,
        ("topic", "partition"),
        _KS,
        "messages between a partition's high watermark and the next offset to read",
    ),
    MetricEvent(RECORDS_IN, _C, _N, _PARTITION, _PL, "records taken from the source"),
    MetricEvent(RECORDS_OUT, _C, _N, _PARTITION, _PL, "records written and acknowledged"),
    MetricEvent(
        ITERATOR_AGE_MS,
        _G,
        _MS,
        _PARTITION,
        _PL,
        "source lag of each batch written",
        cloudwatch_name="IteratorAgeMilliseconds",
    ),
    MetricEvent(
        DEAD_LETTERED,
        _C,
        _N,
        ("stream", "topic", "sink", "partition"),
        _PL,
        "records sent to the dead letter",
    ),
    MetricEvent(CHECKPOINT_LAG, _G, _N, _PARTITION, _PL, "records read but not yet checkpointed"),
    MetricEvent(CHECKPOINT_ERRORS, _C, _N, _PARTITION, _PL, "checkpoints that failed"),
    MetricEvent(CHECKPOINTS_WRITTEN, _C, _N, _PARTITION, _PL, "checkpoints the store accepted"),
    MetricEvent(SINK_RECORDS_WRITTEN, _C, _N, _SINK, _SK, "entries the destination accepted"),
    MetricEvent(SINK_RECORDS_DUPLICATE, _C, _N, _SINK, _SK, "entries already there (replays absorbed)"),
    MetricEvent(SINK_RECORDS_RETRY, _C, _N, _SINK, _SK, "entries failed transiently"),
    MetricEvent(SINK_RECORDS_THROTTLED, _C, _N, _SINK, _SK, "entries refused for capacity"),
    MetricEvent(SINK_RECORDS_REJECTED, _C, _N, _SINK, _SK, "entries the destination refused for good"),
    MetricEvent(SINK_RECORDS_UNAVAILABLE, _C, _N, _SINK, _SK, "entries whose call failed retriably"),
    MetricEvent(SINK_RECORDS_CALL_FAILED, _C, _N, _SINK, _SK, "entries whose call failed for good"),
    MetricEvent(SINK_RECORDS_UNSENT, _C, _N, _SINK, _SK, "entries held back behind an earlier failure"),
)

CATALOGUE: Final[Mapping[str, MetricEvent]] = MappingProxyType({event.name: event for event in _EVENTS})
"""Every event by name."""

_UNKNOWN_KIND = MetricKind.COUNTER


def event_for(name: str) -> MetricEvent:
    """The catalogue entry of ``name``; an event not catalogued (an application's own, sent
    through the same observer) is a plain counter in ``Count``, whatever its name says."""
    event = CATALOGUE.get(name)
    if event is None:
        return MetricEvent(name, _UNKNOWN_KIND, Unit.COUNT, (), "application", "not a Shardline event")
    return event


def markdown_table() -> str:
    """The catalogue as the Markdown table of ``docs/metrics.md`` (a test keeps them equal)."""
    rows = [
        "| event | CloudWatch name | kind | unit | dimensions | from | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for event in _EVENTS:
        dimensions = ", ".join(event.dimensions) or "—"
        rows.append(
            f"| `{event.name}` | {event.cloudwatch_name} | {event.kind.value} | {event.unit.value} "
            f"| {dimensions} | {event.emitter} | {event.meaning} |"
        )
    return "\n".join(rows)
