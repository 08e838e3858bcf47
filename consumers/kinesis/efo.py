"""Enhanced fan-out: consumer registration and the per-shard SubscribeToShard reader.

A fan-out consumer gets its own 2 MiB/s per shard pushed over an HTTP/2 event stream, instead
of sharing the 5 GetRecords calls/s.  A subscription lasts at most 5 minutes; the reader
re-subscribes itself a little earlier (``ReaderConfig.subscription_seconds``), and whenever the
stream ends, from the last ContinuationSequenceNumber, so the hand-over has neither gap nor
overlap.  A re-subscription while the previous one is still open on the service side is
answered with ResourceInUse, which is backed off and retried.  A LATEST start becomes
AT_TIMESTAMP of the first subscription once it is open, so a re-subscription before the first
event does not skip what arrived in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import tenacity
from tenacity.wait import wait_base

from consumers.kinesis._reader_base import ShardReaderBase, StopCondition, WallClock, utc_now
from consumers.kinesis.batch import ShardBatch, child_shards_of, is_lag
from consumers.kinesis.budget import Clock, Sleep
from consumers.kinesis.config import ReaderConfig
from consumers.kinesis.positions import (
    AFTER_SEQUENCE_NUMBER,
    AT_TIMESTAMP,
    TRIM_HORIZON,
    StartKind,
    StartPosition,
    is_sequence_number,
    start_refusals,
)
from consumers.kinesis.reader_bodies import records_of
from shardline import metrics_events as events
from shardline.errormap import map_aws_errors
from shardline.errors import (
    ConfigurationError,
    ResourceInUseError,
    ResourceNotFoundError,
    ShardlineError,
    ThrottledError,
    TransientServiceError,
    ValidationError,
)
from shardline.metrics import MetricsObserver
from shardline.records import ConsumedRecord
from shardline.retry import RetryPolicy, retry_throttles_and_transient
from shardline.shardmath import ShardInfo

__all__ = ["FanOutShardReader", "ensure_consumer", "stream_arn"]

_CONSUMER_POLL_SECONDS = 1.0
_CONSUMER_BACKOFF_MAX = 5.0
_REGISTRATIONS_MAX = 3
"""Registrations of a consumer deleted each time between its ResourceInUse and its description."""


async def stream_arn(client: Any, stream_name: str) -> str:
    """The ARN of a stream (fan-out APIs take ARNs, not names)."""
    with map_aws_errors("kinesis"):
        summary = await client.describe_stream_summary(StreamName=stream_name)
    arn: str = summary["StreamDescriptionSummary"]["StreamARN"]
    return arn


async def ensure_consumer(
    client: Any,
    stream_arn: str,
    consumer_name: str,
    *,
    timeout: float = 120.0,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> str:
    """Register the fan-out consumer (or reuse the existing one of that name); wait until ACTIVE.

    Throttling and transient errors of either call (LimitExceeded: more than 5 registrations a
    second per account, a 6th consumer while 5 are CREATING, more than 20 descriptions a second
    per stream; a fleet of workers starting together meets them) are retried with back-off
    within ``timeout`` seconds, like the wait for ACTIVE.

    A consumer of that name still DELETING (deregistered just before, by the previous run's
    clean-up) is waited for, polled within ``timeout``, and registered again once
    DescribeStreamConsumer no longer finds it; so is one whose deletion ends between the
    registration's ResourceInUse and the description that follows (at most 3 times).

    Returns its ARN.  Raises :class:`ConfigurationError` when it is still being deleted after
    ``timeout``, is deleted while being registered, or when registration is still refused with
    LimitExceeded after ``timeout`` (a stream takes at most 20 consumers), and
    :class:`TransientServiceError` when it is not ACTIVE within ``timeout``.
    """
    if not consumer_name or len(consumer_name) > 128:
        raise ValidationError("a fan-out consumer name is 1-128 characters")
    patience = _Patience(consumer_name, timeout, clock, sleep)
    consumer = await _register(client, stream_arn, consumer_name, patience)
    if consumer["ConsumerStatus"] == "DELETING":
        # deregistered just before (the previous run's clean-up): the name is free again
        # once the deletion is over
        await _deletion_over(client, stream_arn, consumer_name, patience, timeout, clock, sleep)
        consumer = await _register(client, stream_arn, consumer_name, patience)
    deadline = clock() + timeout
    while consumer["ConsumerStatus"] != "ACTIVE":
        if consumer["ConsumerStatus"] == "DELETING":  # deregistered by someone else meanwhile
            raise ConfigurationError(
                f"fan-out consumer {consumer_name!r} was deleted while it was being registered: "
                "is another deployment deregistering consumers of that name?"
            )
        if clock() >= deadline:
            raise TransientServiceError(f"fan-out consumer {consumer_name!r} not ACTIVE after {timeout} s")
        await sleep(_CONSUMER_POLL_SECONDS)
        consumer = await _describe(client, stream_arn, consumer_name, patience)
    arn: str = consumer["ConsumerARN"]
    return arn


async def _register(client: Any, stream_arn: str, consumer_name: str, patience: _Patience) -> dict[str, Any]:
    """The consumer's description after RegisterStreamConsumer, or its description when it
    exists already (ResourceInUse), whatever its status.

    A consumer whose deletion ends between the two calls is not found by the description
    (ResourceNotFound): its name is free, so it is registered again, a bounded number of
    times (:meth:`_Patience.registrations`), each call still retried by ``patience``.
    """

    async def registered_or_found() -> dict[str, Any] | None:
        try:
            registered = await patience.call(
                lambda: client.register_stream_consumer(StreamARN=stream_arn, ConsumerName=consumer_name)
            )
        except ResourceInUseError:
            try:
                return await _describe(client, stream_arn, consumer_name, patience)
            except ResourceNotFoundError:
                return None  # deleted since the registration found it: register again
        consumer: dict[str, Any] = registered["Consumer"]
        return consumer

    try:
        async for attempt in patience.registrations():
            with attempt:
                found = await registered_or_found()
            outcome = attempt.retry_state.outcome
            if outcome is not None and not outcome.failed:
                attempt.retry_state.set_result(found)  # what the result condition judges
    except tenacity.RetryError as gone_each_time:
        raise ConfigurationError(
            f"fan-out consumer {consumer_name!r} was deleted while it was being registered, "
            f"{_REGISTRATIONS_MAX} times: is another deployment deregistering consumers of that name?"
        ) from gone_each_time
    assert found is not None  # the loop ends on a description, or raises
    return found


async def _deletion_over(
    client: Any,
    stream_arn: str,
    consumer_name: str,
    patience: _Patience,
    timeout: float,
    clock: Clock,
    sleep: Sleep,
) -> None:
    """Wait until DescribeStreamConsumer no longer finds the consumer (or finds it in another
    status than DELETING: registered again by a peer), polled through the retry engine for at
    most ``timeout`` seconds on ``clock``."""

    async def status() -> str | None:
        try:
            description = await _describe(client, stream_arn, consumer_name, patience)
        except ResourceNotFoundError:
            return None
        found: str = description["ConsumerStatus"]
        return found

    waiting = RetryPolicy(
        max_attempts=None,
        deadline=timeout,
        initial_backoff=_CONSUMER_POLL_SECONDS,
        max_backoff=_CONSUMER_POLL_SECONDS,
    ).async_retrying(
        retry=tenacity.retry_if_result(lambda found: found == "DELETING"),
        wait=tenacity.wait_fixed(_CONSUMER_POLL_SECONDS),  # a poll, as the wait for ACTIVE
        sleep=sleep,
        clock=clock,
    )
    try:
        async for attempt in waiting:
            with attempt:
                found = await status()
            outcome = attempt.retry_state.outcome
            if outcome is not None and not outcome.failed:
                attempt.retry_state.set_result(found)  # what the result condition judges
    except tenacity.RetryError as still_deleting:  # the deadline passed, the consumer still DELETING
        raise ConfigurationError(
            f"fan-out consumer {consumer_name!r} is still being deleted after {timeout} s: wait "
            "for its deletion to finish (aws kinesis describe-stream-consumer) or use another "
            "consumer name"
        ) from still_deleting


async def _describe(client: Any, stream_arn: str, consumer_name: str, patience: _Patience) -> dict[str, Any]:
    response = await patience.call(
        lambda: client.describe_stream_consumer(StreamARN=stream_arn, ConsumerName=consumer_name)
    )
    description: dict[str, Any] = response["ConsumerDescription"]
    return description


class _Patience:
    """Calls of :func:`ensure_consumer` retried on throttling and transient errors, with the
    shared back-off, until ``timeout`` seconds after the first (on the injected clock)."""

    def __init__(self, consumer_name: str, timeout: float, clock: Clock, sleep: Sleep) -> None:
        self._name = consumer_name
        self._timeout = timeout
        self._sleep = sleep
        self._retrying = RetryPolicy(
            max_attempts=None, deadline=timeout, initial_backoff=0.2, max_backoff=_CONSUMER_BACKOFF_MAX
        ).async_retrying(
            # not the default (any retriable error): ResourceInUse means "registered already"
            retry=tenacity.retry_if_exception_type((ThrottledError, TransientServiceError)),
            sleep=sleep,
            clock=clock,
        )

    def registrations(self) -> tenacity.AsyncRetrying:
        """Attempts at registering a consumer that its description no longer found (an
        attempt's result ``None``): at once, as its deletion is over, at most
        :data:`_REGISTRATIONS_MAX`; :class:`tenacity.RetryError` after the last."""
        return RetryPolicy(max_attempts=_REGISTRATIONS_MAX, deadline=None).async_retrying(
            retry=tenacity.retry_if_result(lambda found: found is None),
            wait=tenacity.wait_none(),
            sleep=self._sleep,
        )

    async def call(self, request: Callable[[], Awaitable[Any]]) -> Any:
        try:
            async for attempt in self._retrying:
                with attempt, map_aws_errors("kinesis"):
                    return await request()
        except ThrottledError as error:  # refused for rate for the whole timeout: a limit
            raise ConfigurationError(
                f"fan-out consumer {self._name!r} still refused after {self._timeout} s ({error}): a "
                "stream takes at most 20 consumers (deregister unused ones), at most 5 may be "
                "CREATING at once"
            ) from error
        raise AssertionError("unreachable: the retrying loop returns or raises")


class FanOutShardReader(ShardReaderBase):
    """Reads one shard through SubscribeToShard, yielding batches in order.

    Same contract as :class:`~consumers.kinesis.polling.PollingShardReader` (async iterator of
    :class:`ShardBatch`, ``stop_at`` for bounded reads), with ``consumer_arn`` from
    :func:`ensure_consumer`.  Empty events (fan-out heartbeats) update ``millis_behind_latest``
    and the continuation but yield nothing, except the final event of a closed shard.
    """

    def __init__(
        self,
        client: Any,
        consumer_arn: str,
        stream_name: str,
        shard_id: str,
        start: StartPosition = TRIM_HORIZON,
        *,
        shard: ShardInfo | None = None,
        stop_at: StopCondition | None = None,
        config: ReaderConfig | None = None,
        observer: MetricsObserver | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        wall_clock: WallClock = utc_now,
    ) -> None:
        super().__init__(
            client,
            stream_name,
            shard_id,
            start,
            shard=shard,
            stop_at=stop_at,
            config=config,
            observer=observer,
            clock=clock,
            sleep=sleep,
            wall_clock=wall_clock,
        )
        self._consumer_arn = consumer_arn
        self._rng = rng if rng is not None else random.Random()
        self._retry = self._config.throttle_retry(self._rng)
        self._resubscribe = self._config.resubscribe_retry(self._rng)
        self._subscribe_condition = tenacity.retry_if_exception_type(
            ResourceInUseError
        ) | retry_throttles_and_transient(self._config.max_transient_retries)
        self._subscribe_wait = _SubscribeWait(self._retry, self._resubscribe, self._rng)
        self._subscriptions = 0

    @property
    def subscriptions(self) -> int:
        """How many subscriptions were opened so far (re-subscriptions included)."""
        return self._subscriptions

    async def _batches(self) -> AsyncIterator[ShardBatch]:
        dims = {"stream": self._stream, "shard": self._shard_id}
        failures = 0
        while not self._finished:
            response, asked_at = await self._subscribe(dims)
            if self._resume.kind is StartKind.LATEST:
                self._resume = AT_TIMESTAMP(asked_at)  # a re-subscription must not skip ahead
            self._subscriptions += 1
            self._observer.on_event(events.SUBSCRIPTIONS, 1.0, **dims)
            event_stream = response["EventStream"]
            subscribed_at = self._clock()
            resume = self._resume
            ended_early = False
            try:
                with map_aws_errors("kinesis"):
                    async for batch in self._events(event_stream, dims):
                        yield batch
                        if self._finished:
                            return
                lived = self._clock() - subscribed_at
                if self._resume is resume and lived < self._config.subscription_seconds:
                    # Ended early without moving the position (no event, or events without a
                    # continuation): a failed subscription, backed off and counted like a
                    # broken one.  Re-subscribing at once spun at network speed, for ever.
                    raise TransientServiceError("the subscription ended early without an event")
                # It worked (an event moved the position): a failure after it is the first in
                # a row, however it ended.  Only a failure reset the count, so failures spread
                # over hours of healthy subscriptions added up to the reader's end.
                failures = 0
                ended_early = lived < self._config.subscription_seconds
            except ShardlineError as error:  # a broken stream: re-subscribe from the continuation
                if self._resume is not resume:
                    # The subscription worked (an event moved the position, records or a
                    # heartbeat): this failure is the first in a row.  Counting only batches
                    # with records let an idle shard's reader die of resets hours apart.
                    failures = 0
                await self._back_off(error, failures, dims)
                failures += 1
            finally:
                with contextlib.suppress(Exception):
                    event_stream.close()
            if ended_early:
                # Ended early after an event (a heartbeat each time, say): re-subscribing at
                # once spun at network speed for as long as the service answered so.  The
                # service needs the previous subscription gone first, as after ResourceInUse.
                await self._sleep(self._resubscribe.max_delay(1) * self._rng.uniform(0.5, 1.0))

    async def _subscribe(self, dims: dict[str, str]) -> tuple[Any, Any]:
        """SubscribeToShard (and when it was asked), retried through shardline.retry.

        ResourceInUse (the previous subscription is not gone yet) and throttling are retried
        for as long as they last, transient errors at most ``max_transient_retries`` times;
        anything else is raised.
        """

        def report(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            if isinstance(error, ResourceInUseError):
                self._observer.on_event(events.SUBSCRIBE_RESOURCE_IN_USE, 1.0, **dims)
            else:
                self._observer.on_event(events.SUBSCRIBE_RETRIES, 1.0, **dims)

        async for attempt in self._retry.async_retrying(
            retry=self._subscribe_condition, wait=self._subscribe_wait, sleep=self._sleep, before_sleep=report
        ):
            with attempt:
                asked_at = self._wall_clock()
                refusals = start_refusals(self._resume, asked_at, f"SubscribeToShard of {self._shard_id}")
                with refusals, map_aws_errors("kinesis"):
                    response = await self._client.subscribe_to_shard(
                        ConsumerARN=self._consumer_arn,
                        ShardId=self._shard_id,
                        StartingPosition=self._resume.starting_position(),
                    )
        return response, asked_at

    async def _events(self, event_stream: Any, dims: dict[str, str]) -> AsyncIterator[ShardBatch]:
        """Batches of one subscription, until it ends or its lifetime is up."""
        deadline = self._clock() + self._config.subscription_seconds
        events = aiter(event_stream)
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return
            try:
                async with asyncio.timeout(remaining):
                    event = await anext(events)
            except (TimeoutError, StopAsyncIteration):
                return
            payload = event.get("SubscribeToShardEvent")
            if payload is None:
                continue
            batch = self._on_event(payload, dims)
            if batch is not None:
                yield batch

    def _on_event(self, payload: dict[str, Any], dims: dict[str, str]) -> ShardBatch | None:
        raw = records_of(payload)
        if raw is None:
            # untrusted bytes: every event has its record list (botocore reads a payload that
            # is no JSON as an empty event), each record its data and sequence number; a
            # broken event, re-subscribed from the last good position
            raise TransientServiceError(f"malformed SubscribeToShard event of {self._shard_id} (records)")
        behind = payload.get("MillisBehindLatest")
        continuation = payload.get("ContinuationSequenceNumber")
        if not is_lag(behind) or not (continuation is None or is_sequence_number(continuation)):
            raise TransientServiceError(
                f"malformed SubscribeToShard event of {self._shard_id} (position or lag)"
            )
        children = child_shards_of(payload.get("ChildShards"))
        if children is None:  # checked before the position moves past the event's records
            raise TransientServiceError(
                f"malformed SubscribeToShard event of {self._shard_id} (child shards)"
            )
        records = self._records(raw)
        if behind is not None:
            self._millis_behind_latest = behind
            self._observer.on_event(events.MILLIS_BEHIND_LATEST, float(behind), **dims)
        if raw:
            self._last_sequence_number = raw[-1]["SequenceNumber"]
        resume_at = _later(continuation, self._last_sequence_number)
        if resume_at is not None and not _behind(resume_at, self._resume):
            self._resume = AFTER_SEQUENCE_NUMBER(resume_at)
        end = continuation is None and bool(children)
        if self._stop_at is not None:
            for index, record in enumerate(records):
                if self._stop_at(record):
                    self._finished = True
                    return self._batch(records[:index], behind) if index else None
        if records:
            self._observer.on_event(events.RECORDS_READ, float(len(records)), **dims)
        if end:
            self._finished = True
            return self._batch(records, behind, end=True, children=children)
        return self._batch(records, behind) if records else None

    def _batch(
        self,
        records: list[ConsumedRecord],
        behind: Any,
        *,
        end: bool = False,
        children: tuple[ShardInfo, ...] = (),
    ) -> ShardBatch:
        return ShardBatch(
            shard_id=self._shard_id,
            records=tuple(records),
            millis_behind_latest=None if behind is None else int(behind),
            end_of_shard=end,
            child_shards=children,
            continuation=self._resume.sequence_number,
        )

    async def _back_off(self, error: ShardlineError, attempt: int, dims: dict[str, str]) -> None:
        config = self._config
        if isinstance(error, ResourceInUseError):
            self._observer.on_event(events.SUBSCRIBE_RESOURCE_IN_USE, 1.0, **dims)
            # Jitter in [0.5, 1] of the step: the service needs the previous subscription gone first.
            delay = self._resubscribe.max_delay(attempt + 1) * self._rng.uniform(0.5, 1.0)
            await self._sleep(delay)
            return
        if isinstance(error, ThrottledError) or (
            isinstance(error, TransientServiceError) and attempt < config.max_transient_retries
        ):
            self._observer.on_event(events.SUBSCRIBE_RETRIES, 1.0, **dims)
            await self._sleep(self._retry.backoff(attempt + 1))
            return
        raise error


class _SubscribeWait(wait_base):
    """Back-off between subscribe attempts: after ResourceInUse a jitter in [0.5, 1] of the
    resubscribe step (the service needs the previous subscription gone first), otherwise the
    readers' full-jitter back-off."""

    def __init__(self, retry: RetryPolicy, resubscribe: RetryPolicy, rng: random.Random) -> None:
        self._retry = retry
        self._resubscribe = resubscribe
        self._rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        attempt = retry_state.attempt_number
        if outcome is not None and isinstance(outcome.exception(), ResourceInUseError):
            return self._resubscribe.max_delay(attempt) * self._rng.uniform(0.5, 1.0)
        return self._retry.backoff(attempt)


def _behind(sequence_number: str, position: StartPosition) -> bool:
    """Whether a continuation lies before where the reader stands.

    Taken, it moved the reader back: from a checkpoint (AFTER 1005, a continuation 1000) the
    next subscription read 1001-1005 again; inside an aggregate (AT 1005 skipping through
    sub-record 3) AFTER 1004 delivered its first sub-records again.  A continuation equal to
    the position is no move back (AFTER it, as the service says it was read).
    """
    standing = position.sequence_number
    return standing is not None and int(sequence_number) < int(standing)


def _later(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if int(a) >= int(b) else b
