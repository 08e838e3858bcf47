"""The polling reader of one shard: GetRecords within a shared call budget.

:class:`PollingShardReader` is an async iterator of :class:`ShardBatch`.  It calls GetRecords
only when its consumer asks for the next batch, so a slow consumer pauses it (back-pressure)
rather than making it buffer.  It keeps going through what the service throws at a long-lived
reader:

* throttling (ProvisionedThroughputExceeded): capped exponential back-off with full jitter,
  for as long as it takes;
* an expired or unusable iterator: a new one AFTER the last delivered sequence number, so
  nothing is skipped and nothing delivered is delivered again.  Before anything was
  delivered, a LATEST start is replaced by AT_TIMESTAMP of the moment the first iterator was
  asked for: asking for LATEST again would skip what arrived in between (at worst a few
  records from just before the start are read, never one is missed; this relies on the
  client clock being no later than the service's);
* 5xx and dropped connections: a bounded number of retries, each from a fresh iterator;
* an empty response at the tip: an idle back-off that doubles up to a cap.

The shard's end is detected when NextShardIterator is absent; the last batch then carries
``end_of_shard`` and the ChildShards.  ``stop_at`` and ``stop_at_tip`` bound the read, which
is what replay jobs build on.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from consumers.kinesis._reader_base import ShardReaderBase, StopCondition, WallClock, utc_now
from consumers.kinesis.batch import ShardBatch, child_shards_of, is_lag
from consumers.kinesis.budget import CallBudget, Clock, Sleep
from consumers.kinesis.config import ReaderConfig
from consumers.kinesis.positions import (
    AFTER_SEQUENCE_NUMBER,
    AT_TIMESTAMP,
    TRIM_HORIZON,
    StartKind,
    StartPosition,
    start_refusals,
)
from consumers.kinesis.reader_bodies import records_of
from shardline import metrics_events as events
from shardline.errormap import map_aws_errors, not_a_kinesis_answer
from shardline.errors import (
    ExpiredIteratorError,
    ThrottledError,
    TransientServiceError,
)
from shardline.metrics import MetricsObserver
from shardline.records import ConsumedRecord, KinesisPosition
from shardline.retry import retry_throttles_and_transient
from shardline.shardmath import ShardInfo

__all__ = [
    "PollingShardReader",
    "StopCondition",
    "WallClock",
    "stop_after_sequence",
    "stop_at_timestamp",
]


def stop_after_sequence(sequence_number: str) -> StopCondition:
    """End a read after the record with this sequence number (all its sub-records included)."""
    last = int(sequence_number)

    def beyond(record: ConsumedRecord) -> bool:
        position = record.position
        return isinstance(position, KinesisPosition) and int(position.sequence_number) > last

    return beyond


def stop_at_timestamp(timestamp: datetime) -> StopCondition:
    """End a read before the first record that arrived at or after ``timestamp``."""

    def beyond(record: ConsumedRecord) -> bool:
        return record.arrival_time is not None and record.arrival_time >= timestamp

    return beyond


class PollingShardReader(ShardReaderBase):
    """Reads one shard with GetRecords, yielding batches in order.

    Args:
        client: an aiobotocore Kinesis client (the caller owns its lifetime).
        stream_name: the stream.
        shard_id: the shard to read.
        start: where to start (see :mod:`consumers.kinesis.positions`).
        shard: the shard's description, to check de-aggregated records against its hash range.
        stop_at: ends the read before the first record it returns True for.
        stop_at_tip: ends the read at the first empty response that is caught up
            (MillisBehindLatest 0), for bounded jobs over a live shard; a callable is asked
            at each such response (a window ending in the future: once its end has passed).
        budget: the GetRecords call budget; by default ``config.budget_share`` of 5 calls/s.
        config: pacing and back-off settings.
        observer: receives ``get_records_calls``, ``records_read``, ``millis_behind_latest``,
            ``get_records_throttled``, ``iterator_expired``, ``get_records_retries`` and
            ``records_outside_shard_range``, each with ``stream`` and ``shard`` dimensions.
        clock, sleep, rng, wall_clock: injectable time and randomness, for deterministic tests
            (``rng`` draws the full jitter of :meth:`ReaderConfig.throttle_retry`).
    """

    def __init__(
        self,
        client: Any,
        stream_name: str,
        shard_id: str,
        start: StartPosition = TRIM_HORIZON,
        *,
        shard: ShardInfo | None = None,
        stop_at: StopCondition | None = None,
        stop_at_tip: bool | Callable[[], bool] = False,
        budget: CallBudget | None = None,
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
        self._start = start
        self._stop_at_tip = stop_at_tip
        self._budget = (
            budget if budget is not None else CallBudget(self._config.budget_share, clock=clock, sleep=sleep)
        )
        self._retry = self._config.throttle_retry(rng)
        self._retry_condition = retry_throttles_and_transient(self._config.max_transient_retries)

    def _stops_at_tip(self) -> bool:
        stop = self._stop_at_tip
        return stop() if callable(stop) else stop

    async def _batches(self) -> AsyncIterator[ShardBatch]:
        config = self._config
        dims = {"stream": self._stream, "shard": self._shard_id}
        iterator: str | None = None
        iterator_taken = 0.0
        idle_delay = config.idle_backoff_initial
        while not self._finished:
            if iterator is None or self._clock() - iterator_taken > config.iterator_lifetime:
                iterator = await self._new_iterator()
                iterator_taken = self._clock()
            try:
                response, children = await self._get_records(iterator, dims)
            except ExpiredIteratorError:
                self._observer.on_event(events.ITERATOR_EXPIRED, 1.0, **dims)
                iterator = None
                continue
            iterator = response.get("NextShardIterator")
            iterator_taken = self._clock()
            behind = response.get("MillisBehindLatest")
            if behind is not None:
                self._millis_behind_latest = int(behind)
                self._observer.on_event(events.MILLIS_BEHIND_LATEST, float(behind), **dims)
            raw = response.get("Records") or []
            records = self._records(raw)
            if raw:
                self._last_sequence_number = raw[-1]["SequenceNumber"]
                self._resume = AFTER_SEQUENCE_NUMBER(raw[-1]["SequenceNumber"])
            if self._stop_at is not None:
                for index, record in enumerate(records):
                    if self._stop_at(record):
                        self._finished = True
                        if index:
                            yield self._batch(records[:index], behind)
                        return
            if records:
                self._observer.on_event(events.RECORDS_READ, float(len(records)), **dims)
            if iterator is None:
                self._finished = True
                yield self._batch(records, behind, end=True, children=children)
                return
            if records:
                idle_delay = config.idle_backoff_initial
                yield self._batch(records, behind)
                # Let go of the batch and the response before the next call: the consumer may
                # be done with them, and holding them while paced would keep up to 10 MB and
                # their records alive, for the collector to walk again and again.
                del records, raw, response
                continue
            if raw:
                continue  # every record was already processed (resume inside an aggregate)
            caught_up = behind is None or int(behind) == 0
            if caught_up and self._stops_at_tip():
                self._finished = True
                return
            if caught_up:
                await self._sleep(idle_delay)
                idle_delay = min(config.idle_backoff_max, idle_delay * 2)

    def _batch(
        self,
        records: list[ConsumedRecord],
        behind: int | None,
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
            continuation=self._last_sequence_number,
        )

    async def _get_records(self, iterator: str, dims: dict[str, str]) -> tuple[Any, tuple[ShardInfo, ...]]:
        """One GetRecords within the read budget, retried (shardline.retry): throttling for as
        long as it lasts, transient errors a bounded number of times, each from a fresh iterator.
        Returns the answer and its child shards, checked."""
        fresh_iterator = False
        async for attempt in self._retry.async_retrying(retry=self._retry_condition, sleep=self._sleep):
            with attempt:
                if fresh_iterator:
                    iterator = await self._new_iterator()
                    fresh_iterator = False
                await self._budget.acquire()
                self._observer.on_event(events.GET_RECORDS_CALLS, 1.0, **dims)
                try:
                    with map_aws_errors("kinesis"):
                        response = await self._client.get_records(
                            ShardIterator=iterator, Limit=self._config.get_records_limit
                        )
                    if records_of(response) is None:
                        # no record list read as data, no records and no next iterator, would
                        # be the shard's end (the source would checkpoint SHARD_END for an open
                        # shard); a record without data, key or sequence number can't be kept,
                        # and its position would be refused as a caller's bad input
                        raise not_a_kinesis_answer(
                            f"GetRecords of {self._shard_id}", "a record list, every record whole"
                        )
                    children = child_shards_of(response.get("ChildShards"))
                    if children is None or not is_lag(response.get("MillisBehindLatest")):
                        # checked before the answer moves the position: a lag past a Long and
                        # a child shard without an id or a hash-key range raised bare errors
                        # out of the reader, the latter after the shard's last records went on
                        raise not_a_kinesis_answer(
                            f"GetRecords of {self._shard_id}", "a lag and child shards as Kinesis sends them"
                        )
                    return response, children
                except ThrottledError:
                    self._observer.on_event(events.GET_RECORDS_THROTTLED, 1.0, **dims)
                    raise
                except TransientServiceError:
                    self._observer.on_event(events.GET_RECORDS_RETRIES, 1.0, **dims)
                    fresh_iterator = True
                    raise
        raise AssertionError("unreachable: the retry controller re-raises the last error")

    async def _new_iterator(self) -> str:
        """GetShardIterator at the resume position, retrying throttles and transient errors."""
        async for attempt in self._retry.async_retrying(retry=self._retry_condition, sleep=self._sleep):
            with attempt:
                asked_at = self._wall_clock()
                # a start a moment ago by this clock may be "in the future" by a service whose
                # clock is a little behind: asked again (with back-off) once its clock passed it
                refusals = start_refusals(self._resume, asked_at, f"GetShardIterator of {self._shard_id}")
                with refusals, map_aws_errors("kinesis"):
                    response = await self._client.get_shard_iterator(
                        StreamName=self._stream, ShardId=self._shard_id, **self._resume.iterator_args()
                    )
                if type(response.get("ShardIterator")) is not str:
                    raise not_a_kinesis_answer("GetShardIterator", "an iterator")
        iterator: str = response["ShardIterator"]
        if self._resume.kind is StartKind.LATEST:
            # "now" is fixed at the first iterator: a later one starts from this moment
            self._resume = AT_TIMESTAMP(asked_at)
        return iterator
