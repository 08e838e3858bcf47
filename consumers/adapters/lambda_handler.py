"""AWS Lambda handler for Kinesis and Kafka (Amazon MSK, self-managed) event-source mappings.

Lambda reads the stream, keeps the position and retries; Shardline writes the records of
one invocation through the same transform / sink / bisection / dead-letter logic as the
long-running consumer and answers with a partial batch response, so Lambda retries only
what was not written.  The event-source mapping must enable ``ReportBatchItemFailures``;
where it cannot (a Kafka mapping without provisioned pollers), or does not, Lambda ignores
``batchItemFailures`` and counts the batch done, so the handler is made with
``partial_batch_response=False``: then any record left unwritten fails the invocation
(:class:`~shardline.errors.SinkError`) and Lambda retries the whole batch.

Failures are mapped per record, whatever the order of the records in the event: the
records of each shard or partition are written in stream order (sequence number, offset),
and every event record that is not acknowledged (written or dead-lettered) is listed in
``batchItemFailures`` with the identifier AWS documents for its source:

* Kinesis: ``{"itemIdentifier": "<sequenceNumber>"}``.  Lambda resumes the shard at the
  lowest one listed, so everything after it is retried too and the idempotent sink absorbs
  the repeats.  A KPL aggregate is one Kinesis record for Lambda: a failure of any of its
  user records reports the aggregate's sequence number.
* Kafka: ``{"itemIdentifier": {"topic-partition": "<topic>-<partition>", "offset": N}}``.

A record that appears twice in one event (same shard and sequence number, or same
topic-partition-offset) is written once.  Which records are acknowledged is exact, not
rounded to a sink batch: when the sink rejects a record and there is no dead letter, the
pipeline bisects the failing sink batch in order, so every record before the rejected one is
written.  A sink *outage* (retriable errors, throttling) is waited out and never
dead-lettered.

The write is bounded by the invocation's remaining time (``context``'s
``get_remaining_time_in_millis``, less ``time_margin`` seconds; by default 5 s, or half the
remaining time when less than 10 s remain, as with Lambda's default 3 s timeout): that is the
pipeline's deadline, at which it stops waiting for the destination or an async transform and
the records not yet written are reported, so the function answers before Lambda times it
out.  Should the batch still be running half a margin later (a sink call that ignores
cancellation), every record of the event is reported for retry.

Typical use, at module level so the sink's clients survive between invocations::

    handler = make_handler(sink_from_uri("dynamodb://readings"), dead_letter=...)

The handler keeps one event loop for the life of the execution environment, because
aiobotocore clients are bound to the loop that created them.  The loop runs in a thread of
its own and the invocation waits for it with a timeout, so that the hard bound holds even
for a sink that blocks the loop (a blocking client called inside ``async def``), which no
cancellation reaches.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from consumers._kafka_messages import arrival_from_millis, event_id_verified
from consumers.adapters._batch import ONE_BATCH_CONFIG, BatchOutcome, process_batch
from consumers.pipeline import SINK_RETRY_FOREVER, PipelineConfig, Transform
from consumers.sinks.base import DeadLetter, Sink
from shardline.aggregation import DeaggregationPolicy, deaggregate_consumed
from shardline.errors import BackgroundTaskError, ClosedError, ConfigurationError, SinkError, ValidationError
from shardline.kafka_config import EVENT_ID_HEADER
from shardline.limits import INT64_MAX
from shardline.metrics import MetricsObserver
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition
from shardline.validation import is_decimal, validate_topic_name

__all__ = [
    "KAFKA_EVENT_SOURCES",
    "EventRecord",
    "LambdaHandler",
    "make_handler",
    "parse_event",
    "parse_kafka_event",
    "parse_kinesis_event",
]


class LambdaHandler(Protocol):
    """What :func:`make_handler` returns: Lambda calls it with each event; ``close`` ends it."""

    def __call__(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]: ...

    def close(self, timeout: float | None = 30.0) -> None:
        """Close the sink (and the dead letter) on the handler's loop, then end its thread."""
        ...


KAFKA_EVENT_SOURCES = frozenset({"aws:kafka", "aws:SelfManagedKafka", "SelfManagedKafka"})
"""``eventSource`` of Amazon MSK and self-managed Kafka events (both spellings are published)."""

_PARTITION_MAX = 2**31 - 1
"""Kafka's partition ids are Java ints."""
_NO_TIMESTAMP_TYPE = "NO_TIMESTAMP_TYPE"

_DEFAULT_TIME_MARGIN = 5.0
_DEFAULT_MARGIN_SHARE = 0.5
"""The default margin is at most this share of the remaining time: a fixed 5 s left nothing
to write with under Lambda's default 3 s timeout, and every batch failed unwritten."""

LAMBDA_CONFIG = dataclasses.replace(ONE_BATCH_CONFIG, sink_retry=SINK_RETRY_FOREVER)
"""One batch, an outage waited out until the invocation's deadline (not a fixed minute)."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One record of the event as Lambda counts it, and the user records it carries.

    ``identifier`` is the ``itemIdentifier`` Lambda expects for this record; ``key`` is what
    makes two event records the same record (for de-duplication).
    """

    identifier: str | dict[str, Any]
    key: tuple[Any, ...]
    records: tuple[ConsumedRecord, ...]


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
    expansion bounds stays whole, to be dead-lettered; an event id is the identity only when
    its MAC verifies with ``policy.event_id_key``).  Raises :class:`ValidationError` for an event
    that is not a Kinesis event-source-mapping event, before anything is written.
    """
    return [(str(item.identifier), list(item.records)) for item in _kinesis_records(event, policy)]


def _kinesis_records(
    event: Mapping[str, Any], policy: DeaggregationPolicy | None = None
) -> list[EventRecord]:
    raw_records = event.get("Records")
    if not isinstance(raw_records, list):
        raise ValidationError("not a Kinesis event: no Records list")
    parsed: list[EventRecord] = []
    streams: set[str] = set()
    for raw in raw_records:
        try:
            if raw["eventSource"] != "aws:kinesis":
                raise ValidationError(f"unsupported eventSource {str(raw['eventSource'])[:64]!r}")
            kinesis = raw["kinesis"]
            sequence_number = str(kinesis["sequenceNumber"])
            if not is_decimal(sequence_number) or len(sequence_number) > 129:
                # the API's pattern allows 129 digits; a longer one is refused before int() reads it
                raise ValidationError("Kinesis sequence number is not a decimal of at most 129 digits")
            shard_id = str(raw["eventID"]).split(":", 1)[0]
            stream = _stream_name(str(raw["eventSourceARN"]))
            streams.add(stream)
            if len(streams) > 1:
                # a mapping reads one stream, and its itemIdentifier (a bare sequence number)
                # cannot say which: two streams' records with one shard id and sequence number
                # were taken for one record, and the one not written was answered as done
                raise ValidationError(
                    "not a Kinesis event-source-mapping event: records of more than one stream"
                )
            data = base64.b64decode(kinesis["data"], validate=True)
            arrival = kinesis.get("approximateArrivalTimestamp")
            record = ConsumedRecord(
                data=data,
                partition_key=str(kinesis["partitionKey"]),
                position=KinesisPosition(stream, shard_id, sequence_number),
                arrival_time=None if arrival is None else datetime.fromtimestamp(float(arrival), tz=UTC),
            )
        except ValidationError:
            raise
        except (KeyError, TypeError, ValueError, OverflowError, OSError, binascii.Error) as exc:
            # OverflowError / OSError (EOVERFLOW from the C library's gmtime): an arrival time
            # past what a datetime or the platform's time functions can hold
            raise ValidationError(f"malformed Kinesis event record: {type(exc).__name__}") from exc
        parsed.append(
            EventRecord(
                identifier=sequence_number,
                key=(shard_id, int(sequence_number)),
                records=tuple(deaggregate_consumed(record, policy)),
            )
        )
    return parsed


def parse_kafka_event(
    event: Mapping[str, Any], policy: DeaggregationPolicy | None = None
) -> list[EventRecord]:
    """An Amazon MSK or self-managed Kafka event's records, in event order.

    Keys and values arrive base64-encoded (either may be absent: no key, a tombstone);
    header values arrive as lists of (possibly negative, Java-signed) byte values.  The
    Shardline event-id header, when present, becomes the record's ``event_id``; it is the
    record's identity only when its MAC header verifies with ``policy.event_id_key``.
    """
    source = event.get("eventSource")
    if not isinstance(source, str) or source not in KAFKA_EVENT_SOURCES:
        raise ValidationError(f"not a Kafka event: eventSource {str(source)[:64]!r}")
    groups = event.get("records")
    if not isinstance(groups, Mapping):
        raise ValidationError("not a Kafka event: no records map")
    parsed: list[EventRecord] = []
    for group_key, group in groups.items():
        if not isinstance(group, list):
            raise ValidationError("malformed Kafka event: a topic-partition is not a list")
        for raw in group:
            parsed.append(_kafka_record(raw, group_key, policy))
    return parsed


def _header_value(values: Any) -> bytes:
    """A header value from the event's list of Java-signed byte values (-128..255 taken).

    A null value reads as empty bytes, as :class:`~consumers.kafka.KafkaSource` reads one: as a
    malformed event it failed every invocation of the batch, retried until the records
    expired.  Anything but a list of JSON integers in a byte's range is malformed: ``int()``
    read a str "123" as three bytes and 1.9 as 1, and a number outside the range was wrapped.
    """
    if values is None:
        return b""
    if not isinstance(values, list) or not all(_is_int(byte) and -128 <= byte <= 255 for byte in values):
        raise ValueError("a header value that is not a list of byte values")
    return bytes(byte & 0xFF for byte in values)


def _is_int(value: Any) -> bool:
    """A JSON integer: not a bool, a float or a decimal str, which ``int()`` would coerce."""
    return isinstance(value, int) and not isinstance(value, bool)


def _int_field(raw: Mapping[str, Any], name: str, top: int) -> int:
    """``raw[name]`` when it is an integer in 0..``top``; the message never names the value."""
    value = raw[name]
    if not _is_int(value) or not 0 <= value <= top:
        raise ValueError(f"{name} is not an integer in 0..{top}")
    return int(value)


def _headers(raw_headers: Any) -> dict[str, bytes]:
    """The record's headers: a list of one-member ``{name: [byte, ...]}`` objects (or null).

    A repeated name keeps its last value, as :class:`~consumers.kafka.KafkaSource` keeps it.
    """
    if raw_headers is None:
        return {}
    if not isinstance(raw_headers, list):
        raise ValueError("headers is not a list")
    headers: dict[str, bytes] = {}
    for header in raw_headers:
        if not isinstance(header, Mapping):
            raise ValueError("a header is not an object")
        for name, values in header.items():
            if not isinstance(name, str):
                raise ValueError("a header name is not a str")
            headers[name] = _header_value(values)
    return headers


def _arrival(raw: Mapping[str, Any]) -> datetime | None:
    """The record's timestamp as a time; none for a record Kafka gave none (``NO_TIMESTAMP_TYPE``,
    timestamp -1), as :class:`~consumers.kafka.KafkaSource` reads it, not 1969-12-31."""
    timestamp = raw.get("timestamp")
    if timestamp is None:
        return None
    if not _is_int(timestamp):
        raise ValueError("timestamp is not an integer")
    if raw.get("timestampType") == _NO_TIMESTAMP_TYPE:
        return None
    return arrival_from_millis(timestamp)


def _kafka_record(raw: Any, group_key: Any, policy: DeaggregationPolicy | None = None) -> EventRecord:
    try:
        if not isinstance(raw, Mapping):
            raise TypeError("a record is not an object")
        # the identifier Lambda matches is built from these: a Kafka topic name and
        # integers in Kafka's ranges, or the event is not one Lambda sent
        topic = validate_topic_name(raw["topic"])
        partition = _int_field(raw, "partition", _PARTITION_MAX)
        offset = _int_field(raw, "offset", INT64_MAX)
        if group_key != f"{topic}-{partition}":
            raise ValueError("the record is filed under another topic-partition")
        key = raw.get("key")
        value = raw.get("value")
        key_bytes = b"" if key is None else base64.b64decode(key, validate=True)
        data = b"" if value is None else base64.b64decode(value, validate=True)
        headers = _headers(raw.get("headers"))
        arrival = _arrival(raw)
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError, binascii.Error) as exc:
        raise ValidationError(f"malformed Kafka event record: {type(exc).__name__}") from exc
    raw_id = headers.get(EVENT_ID_HEADER)
    event_id = None if raw_id is None else raw_id.decode("utf-8", "replace")
    key = None if policy is None else policy.event_id_key
    record = ConsumedRecord(
        data=data,
        partition_key=key_bytes.decode("utf-8", "surrogateescape"),
        position=KafkaPosition(topic, partition, offset),
        arrival_time=arrival,
        event_id=event_id,
        headers=headers or None,
        event_id_verified=event_id_verified(key, event_id, data, headers),
    )
    return EventRecord(
        identifier={"topic-partition": f"{topic}-{partition}", "offset": offset},
        key=(topic, partition, offset),
        records=(record,),
    )


def parse_event(event: Mapping[str, Any], policy: DeaggregationPolicy | None = None) -> list[EventRecord]:
    """A Kinesis or Kafka event-source-mapping event's records (``ValidationError`` otherwise)."""
    if not isinstance(event, Mapping):
        raise ValidationError("a Lambda event is a JSON object")
    source = event.get("eventSource")
    if isinstance(source, str) and source in KAFKA_EVENT_SOURCES:
        return parse_kafka_event(event, policy)
    if "eventSource" in event:  # Kinesis events name their source per record only
        raise ValidationError(f"unsupported eventSource {str(source)[:64]!r}")
    return _kinesis_records(event, policy)


def _unique(items: list[EventRecord]) -> list[EventRecord]:
    seen: set[tuple[Any, ...]] = set()
    unique: list[EventRecord] = []
    for item in items:
        if item.key not in seen:
            seen.add(item.key)
            unique.append(item)
    return unique


def _in_stream_order(items: list[EventRecord]) -> dict[str, list[ConsumedRecord]]:
    """Each partition's user records sorted by position, so the pipeline's watermark (the
    highest position below which every record is acknowledged) is exact per record."""
    by_partition: dict[str, list[ConsumedRecord]] = {}
    for item in items:
        for record in item.records:
            by_partition.setdefault(record.position.partition, []).append(record)
    for records in by_partition.values():
        records.sort(key=lambda record: record.position)
    return by_partition


def _remaining_seconds(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return float(remaining()) / 1000.0


class _LoopThread:
    """The handler's event loop, run in a daemon thread started on first use.

    The invocation thread waits for each batch with a timeout instead of running the loop
    itself: a sink blocking the loop cannot then keep the handler from answering.  The thread
    is owned by the handler: should it end (a ``SystemExit`` raised in a callback stops
    ``run_forever``), every later batch would wait for a loop that no longer runs, so the
    wait raises :class:`~shardline.errors.BackgroundTaskError` with the cause instead, and
    the invocation fails loudly (Lambda retries it, the log says why).
    """

    _POLL_S = 1.0  # how often a wait without a deadline looks at the thread

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._death: BaseException | None = None

    def submit(self, coroutine: Coroutine[Any, Any, BatchOutcome]) -> concurrent.futures.Future[BatchOutcome]:
        self._check_alive(coroutine)
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="shardline-lambda-loop", daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def wait(self, future: concurrent.futures.Future[Any], timeout: float | None) -> bool:
        """Wait for ``future`` at most ``timeout`` seconds (``None``: as long as the loop runs)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = self._POLL_S if deadline is None else min(self._POLL_S, deadline - time.monotonic())
            done, _ = concurrent.futures.wait([future], timeout=max(0.0, left))
            if done:
                return True
            self._check_alive()
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def close(self, last: Coroutine[Any, Any, None], timeout: float | None) -> None:
        """Cancel what still runs on the loop, run ``last`` there (all within ``timeout``
        seconds), then end the loop and its thread."""
        thread = self._thread
        if thread is None:  # never invoked: the loop never ran, so it runs ``last`` here
            try:
                self.loop.run_until_complete(self._wind_down(last, timeout))
            finally:
                self.loop.close()
            return
        self._check_alive(last)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self.wait(asyncio.run_coroutine_threadsafe(self._wind_down(last, timeout), self.loop), timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()) + self._POLL_S)
            if not thread.is_alive():
                self.loop.close()

    async def _wind_down(self, last: Coroutine[Any, Any, None], timeout: float | None) -> None:
        """As ``asyncio.run`` ends: the tasks still pending are cancelled and awaited (a batch
        given up at its deadline may have left some), then ``last`` runs and the async
        generators are closed, all within ``timeout`` seconds (half of it at most for the
        leftovers, which may ignore their cancellation).  Left pending, they were destroyed
        with the closed loop, and their "Task was destroyed but it is pending" errors landed
        wherever the collector ran.
        """
        started = self.loop.time()
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.wait(leftovers, timeout=None if timeout is None else timeout / 2)
        left = None if timeout is None else max(0.0, timeout - (self.loop.time() - started))
        try:
            await asyncio.wait_for(last, left)
        finally:
            await self.loop.shutdown_asyncgens()

    def _serve(self) -> None:
        try:
            self.loop.run_forever()
        except BaseException as exc:  # noqa: BLE001 - kept for the handler, which raises it
            self._death = exc
        else:
            self._death = RuntimeError("the loop was stopped")

    def _check_alive(self, coroutine: Coroutine[Any, Any, Any] | None = None) -> None:
        thread = self._thread
        if thread is not None and not thread.is_alive():
            if coroutine is not None:
                coroutine.close()  # never scheduled: no "coroutine was never awaited" warning
            raise BackgroundTaskError("the Lambda handler's event loop thread ended") from self._death


def _margin(time_margin: float | None, remaining: float | None) -> float:
    """The seconds of ``remaining`` kept back for answering (see :func:`make_handler`)."""
    if time_margin is None:
        if remaining is None:
            return _DEFAULT_TIME_MARGIN
        return min(_DEFAULT_TIME_MARGIN, remaining * _DEFAULT_MARGIN_SHARE)
    if remaining is not None and remaining <= time_margin:
        raise ConfigurationError(
            f"the invocation has {remaining:.1f} s left and time_margin={time_margin:g} s keeps"
            " all of it back: nothing could be written; raise the function's timeout or lower"
            " time_margin"
        )
    return time_margin


def make_handler(
    sink: Sink,
    *,
    transform: Transform | None = None,
    dead_letter: DeadLetter | None = None,
    config: PipelineConfig | None = None,
    observer: MetricsObserver | None = None,
    time_margin: float | None = None,
    deaggregation: DeaggregationPolicy | None = None,
    partial_batch_response: bool = True,
) -> LambdaHandler:
    """A Lambda handler writing Kinesis or Kafka event records to ``sink``; see the module docstring.

    ``time_margin`` seconds of the invocation's remaining time are kept for answering
    (default: 5 s, at most half the remaining time).  An explicit margin that leaves no time
    to write raises :class:`ConfigurationError` at the invocation instead of failing every
    batch unwritten.
    ``deaggregation`` (default: expand within the default bounds, event ids informational)
    is where a deployment opts in to trusted event ids, e.g.
    ``DeaggregationPolicy(event_id_key=EventIdKey.from_environment())``, or turns expansion
    off for streams fed with device bytes (docs/security.md).
    ``partial_batch_response=False`` is for a mapping that ignores ``batchItemFailures``
    (no ``ReportBatchItemFailures``, or a Kafka mapping in on-demand mode): a record left
    unwritten raises :class:`SinkError`, which fails the invocation as a whole.
    """
    if time_margin is not None and time_margin < 0:
        raise ConfigurationError("time_margin must be >= 0 seconds")
    runner = _LoopThread()
    # the bound is the invocation's remaining time, not a fixed outage limit
    base_config = config if config is not None else LAMBDA_CONFIG

    def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        items = _unique(parse_event(event, deaggregation))
        response: dict[str, Any] = {}
        if "window" in event:
            # a tumbling-window invocation: Lambda counts an answer without a state as a
            # failed invocation, so the state goes back as it came (an absent one as {})
            state = event.get("state")
            response["state"] = {} if state is None else state
        by_partition = _in_stream_order(items)
        if not by_partition:
            response["batchItemFailures"] = []
            return response
        remaining = _remaining_seconds(context)
        margin = _margin(time_margin, remaining)
        budget = None if remaining is None else max(0.0, remaining - margin)
        run = process_batch(
            by_partition,
            sink,
            transform=transform,
            dead_letter=dead_letter,
            config=base_config,
            observer=observer,
            # the pipeline stops writing at the deadline and reports exactly what is written
            deadline=None if budget is None else runner.loop.time() + budget,
        )
        future = runner.submit(run)
        # a last resort past the deadline (a sink call that ignores cancellation or blocks
        # the loop): half the margin is still left to answer
        runner.wait(future, None if budget is None else budget + margin / 2)
        outcome: BatchOutcome | None
        if future.done():
            outcome = future.result()
        else:
            future.cancel()  # cancels the batch's task once the loop is free again
            outcome = None  # nothing is known to be written: all of it is retried
        failures = [
            {"itemIdentifier": item.identifier}
            for item in items
            if outcome is None or not all(outcome.acknowledged(record) for record in item.records)
        ]
        if failures and not partial_batch_response:
            # the mapping would read a listed record as done: only a failed invocation retries it
            if outcome is not None and outcome.failure is not None:
                raise outcome.failure
            unresolved = len(failures)
            raise SinkError(f"the write was still running at the deadline: {unresolved} records unresolved")
        response["batchItemFailures"] = failures
        return response

    return _Handler(handler, runner, sink, dead_letter)


class _Handler:
    """The handler Lambda calls, and its :meth:`close`.

    Lambda keeps a warm handler's loop, sink and their connections for the next invocation,
    and ends them with the execution environment.  Whoever runs a handler outside Lambda (a
    local run, a test, a host embedding it) closes it: until then the sink's connections and
    the loop's thread stay open.
    """

    __slots__ = ("_closed", "_dead_letter", "_invoke", "_runner", "_sink")

    def __init__(
        self,
        invoke: Callable[[Mapping[str, Any], Any], dict[str, Any]],
        runner: _LoopThread,
        sink: Sink,
        dead_letter: DeadLetter | None,
    ) -> None:
        self._invoke = invoke
        self._runner = runner
        self._sink = sink
        self._dead_letter = dead_letter
        self._closed = False

    def __call__(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        if self._closed:
            raise ClosedError("the Lambda handler was closed")
        return self._invoke(event, context)

    def close(self, timeout: float | None = 30.0) -> None:
        """Close the sink and the dead letter on the handler's loop (at most ``timeout``
        seconds), then end the loop and its thread.  Later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        self._runner.close(self._close_destinations(), timeout)

    async def _close_destinations(self) -> None:
        try:
            await self._sink.close()
        finally:
            close = getattr(self._dead_letter, "close", None)
            if close is not None:
                await close()
