"""AWS Lambda handler for Kinesis event-source mappings, with partial batch responses.

Lambda reads the shard, keeps the position and retries; Shardline writes the records of
one invocation through the same transform / sink / bisection / dead-letter logic as the
long-running consumer.  When some records can be neither written nor dead-lettered the
handler returns ``{"batchItemFailures": [{"itemIdentifier": SEQ}]}`` with the sequence
number of the *first* record that is not acknowledged: Lambda then retries from that record
(everything after it is retried too), and the idempotent sink absorbs the repeats.  The
event-source mapping must enable ``ReportBatchItemFailures``.

Which record is "first not acknowledged" is exact, not rounded to a sink batch: when the sink
rejects a record (a non-retriable error) and there is no dead letter, the pipeline bisects the
failing sink batch in order, so every record before the rejected one is written and counted as
acknowledged, and the rejected record's sequence number is reported.  Inside a KPL aggregate
the unit Lambda understands is the Kinesis record, so a failure of any user record reports
the aggregate's sequence number (its earlier user records are written again, idempotently).
A sink *outage* (retriable errors) is retried for at most a minute by default
(``PipelineConfig.sink_retry``), never dead-lettered; then the first record not yet written
is reported and Lambda retries the rest later.

Typical use, at module level so the sink's clients survive between invocations::

    handler = make_handler(sink_from_uri("dynamodb://readings"), dead_letter=...)

The handler keeps one event loop for the life of the execution environment, because
aiobotocore clients are bound to the loop that created them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from consumers.adapters._batch import BatchOutcome, process_batch
from consumers.pipeline import PipelineConfig, Transform
from consumers.sinks.base import DeadLetter, Sink
from shardline.aggregation import DeaggregationPolicy, deaggregate_consumed
from shardline.errors import ValidationError
from shardline.metrics import MetricsObserver
from shardline.records import ConsumedRecord, KinesisPosition

__all__ = ["LambdaHandler", "make_handler", "parse_kinesis_event"]

LambdaHandler = Callable[[Mapping[str, Any], Any], dict[str, Any]]


def _stream_name(arn: str) -> str:
    # arn:aws:kinesis:REGION:ACCOUNT:stream/NAME  (consumer ARNs append /consumer/...)
    _, _, resource = arn.partition(":stream/")
    if not resource:
        raise ValidationError("eventSourceARN is not a Kinesis stream ARN")
    return resource.split("/", 1)[0]


def parse_kinesis_event(
    event: Mapping[str, Any], policy: DeaggregationPolicy | None = None
) -> list[tuple[str, list[ConsumedRecord]]]:
    """The event's records as (sequence number, user records) pairs, in event order.

    KPL aggregates are expanded as ``policy`` says (each user record keeps the Kinesis
    sequence number and gets its index as sub-sequence number; an aggregate over the
    expansion bounds stays whole, to be dead-lettered; event ids are the identity only when
    their MAC verifies with ``policy.event_id_key``).  Raises :class:`ValidationError` for an event
    that is not a Kinesis event-source-mapping event, before anything is written.
    """
    raw_records = event.get("Records")
    if not isinstance(raw_records, list):
        raise ValidationError("not a Kinesis event: no Records list")
    parsed: list[tuple[str, list[ConsumedRecord]]] = []
    for raw in raw_records:
        try:
            if raw["eventSource"] != "aws:kinesis":
                raise ValidationError(f"unsupported eventSource {raw['eventSource']!r}")
            kinesis = raw["kinesis"]
            sequence_number = str(kinesis["sequenceNumber"])
            shard_id = str(raw["eventID"]).split(":", 1)[0]
            data = base64.b64decode(kinesis["data"], validate=True)
            arrival = kinesis.get("approximateArrivalTimestamp")
            record = ConsumedRecord(
                data=data,
                partition_key=str(kinesis["partitionKey"]),
                position=KinesisPosition(_stream_name(str(raw["eventSourceARN"])), shard_id, sequence_number),
                arrival_time=None if arrival is None else datetime.fromtimestamp(float(arrival), tz=UTC),
            )
        except ValidationError:
            raise
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ValidationError(f"malformed Kinesis event record: {type(exc).__name__}") from exc
        parsed.append((sequence_number, deaggregate_consumed(record, policy)))
    return parsed


def _failures(parsed: list[tuple[str, list[ConsumedRecord]]], outcome: BatchOutcome) -> list[dict[str, str]]:
    """The first unacknowledged Kinesis record of each shard (Lambda retries from the lowest)."""
    reported: dict[str, str] = {}
    for sequence_number, user_records in parsed:
        if not user_records:
            continue
        shard = user_records[0].position.partition
        if shard in reported:
            continue
        if not all(outcome.acknowledged(record) for record in user_records):
            reported[shard] = sequence_number
    return [{"itemIdentifier": sequence_number} for sequence_number in reported.values()]


def make_handler(
    sink: Sink,
    *,
    transform: Transform | None = None,
    dead_letter: DeadLetter | None = None,
    config: PipelineConfig | None = None,
    observer: MetricsObserver | None = None,
    deaggregation: DeaggregationPolicy | None = None,
) -> LambdaHandler:
    """A Lambda handler writing Kinesis event records to ``sink``; see the module docstring.

    ``deaggregation`` (default: expand within the default bounds, event ids informational)
    is where a deployment opts in to trusted event ids, e.g.
    ``DeaggregationPolicy(event_id_key=EventIdKey.from_environment())``, or turns
    expansion off for streams fed with device bytes (docs/security.md).
    """
    loop = asyncio.new_event_loop()

    def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        parsed = parse_kinesis_event(event, deaggregation)
        by_shard: dict[str, list[ConsumedRecord]] = {}
        for _, user_records in parsed:
            for record in user_records:
                by_shard.setdefault(record.position.partition, []).append(record)
        if not by_shard:
            return {"batchItemFailures": []}
        outcome = loop.run_until_complete(
            process_batch(
                by_shard,
                sink,
                transform=transform,
                dead_letter=dead_letter,
                config=config,
                observer=observer,
            )
        )
        return {"batchItemFailures": _failures(parsed, outcome)}

    return handler
