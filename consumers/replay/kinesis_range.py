"""Replay a range of Kinesis shards, by time or sequence number, at a capped read rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from consumers.kinesis.budget import CallBudget, Clock, Sleep
from consumers.kinesis.config import ReaderConfig
from consumers.kinesis.polling import PollingShardReader, stop_after_sequence, stop_at_timestamp
from consumers.kinesis.positions import AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON
from shardline.errors import ConfigurationError
from shardline.limits import SHARD_GET_RECORDS_CALLS_PER_SEC
from shardline.metrics import MetricsObserver, NullObserver
from shardline.records import ConsumedRecord
from shardline.shardmath import list_shards
from shardline.validation import is_decimal

__all__ = ["KinesisRange", "KinesisRangeReader"]


@dataclass(frozen=True, slots=True)
class KinesisRange:
    """Where a Kinesis replay starts and stops (per shard), by time or by sequence number.

    Starts at ``start_time`` or ``start_sequence`` (else the trim horizon) and stops before
    the first record at/after ``end_time`` or after ``end_sequence`` (else at the shard's
    tip as it was when the reader caught up).
    """

    start_time: datetime | None = None
    end_time: datetime | None = None
    start_sequence: str | None = None
    end_sequence: str | None = None

    def __post_init__(self) -> None:
        if self.start_time is not None and self.start_sequence is not None:
            raise ConfigurationError("start by time or by sequence number, not both")
        if self.end_time is not None and self.end_sequence is not None:
            raise ConfigurationError("end by time or by sequence number, not both")
        for moment in (self.start_time, self.end_time):
            if moment is not None and moment.tzinfo is None:
                raise ConfigurationError("range times must be timezone-aware")
        if self.start_time and self.end_time and self.end_time <= self.start_time:
            raise ConfigurationError("the range ends before it starts")
        for sequence in (self.start_sequence, self.end_sequence):
            if sequence is not None and not is_decimal(sequence):
                raise ConfigurationError("sequence numbers are decimal strings")
        # the end sequence number is read (inclusive): an end before the start reads nothing
        # and would look like an empty range, so it is refused like a time range that ends first
        if self.start_sequence and self.end_sequence and int(self.end_sequence) < int(self.start_sequence):
            raise ConfigurationError(
                "the range ends before it starts: its end sequence number is below its start"
            )


class KinesisRangeReader:
    """Reads a range of each shard with the polling reader, at a capped GetRecords rate.

        ``calls_per_second`` caps this job's GetRecords calls per shard (default 1 of the 5 a
        shard allows), so live consumers keep their share of the read budget.  Each shard gets
        its own budget.  ``observer`` receives the polling reader's events (``get_records_calls``
        with ``stream`` and ``shard`` dimensions...); ``config`` tunes the polling reader (its
    ``budget_share`` is replaced by ``calls_per_second``); ``clock`` and ``sleep`` drive the budgets
        and back-offs, injectable so tests check the cap without real time passing.
    """

    def __init__(
        self,
        client: Any,
        stream: str,
        window: KinesisRange,
        *,
        shard_ids: Sequence[str] = (),
        calls_per_second: float = 1.0,
        observer: MetricsObserver | None = None,
        config: ReaderConfig | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not 0 < calls_per_second <= SHARD_GET_RECORDS_CALLS_PER_SEC:
            raise ConfigurationError(f"calls_per_second must be in (0, {SHARD_GET_RECORDS_CALLS_PER_SEC}]")
        if (window.start_sequence is not None or window.end_sequence is not None) and len(shard_ids) != 1:
            raise ConfigurationError("a sequence-number range belongs to one shard: name exactly one shard")
        self.client = client
        self.stream = stream
        self.window = window
        self.shard_ids = tuple(shard_ids)
        self.calls_per_second = calls_per_second
        self.observer: MetricsObserver = observer if observer is not None else NullObserver()
        self.config = config
        self._clock = clock
        self._sleep = sleep
        self._parents: dict[str, tuple[str, ...]] = {}

    def __repr__(self) -> str:
        return f"KinesisRangeReader(stream={self.stream!r}, window={self.window!r})"

    async def partitions(self) -> list[str]:
        if len(self.shard_ids) == 1:  # one shard (a sequence range): nothing to order
            return list(self.shard_ids)
        shards = await list_shards(self.client, stream_name=self.stream)
        self._parents = {shard.shard_id: shard.parents for shard in shards}
        if self.shard_ids:
            return list(self.shard_ids)
        return [shard.shard_id for shard in shards]

    def parents(self, partition: str) -> tuple[str, ...]:
        """The shards ``partition`` was split or merged from: they are read before it.

        Read side by side, a parent's older record of a key could reach the sink after the
        child's newer one, leaving a plain (unguarded) sink with the older value.
        """
        return self._parents.get(partition, ())

    async def read(
        self, partition: str, after: str | None
    ) -> AsyncIterator[tuple[Sequence[ConsumedRecord], str]]:
        window = self.window
        if after is not None:
            start = AFTER_SEQUENCE_NUMBER(after)
        elif window.start_sequence is not None:
            start = AT_SEQUENCE_NUMBER(window.start_sequence)
        elif window.start_time is not None:
            # Kinesis refuses an AT_TIMESTAMP iterator in the future: a window that has not
            # begun yet (a range planned to reach ahead of now) is read once it has
            ahead = (window.start_time - datetime.now(UTC)).total_seconds()
            if ahead > 0:
                await self._sleep(ahead)
            start = AT_TIMESTAMP(window.start_time)
        else:
            start = TRIM_HORIZON
        stop = None
        if window.end_sequence is not None:
            stop = stop_after_sequence(window.end_sequence)
        elif window.end_time is not None:
            stop = stop_at_timestamp(window.end_time)
        budget = CallBudget(
            self.calls_per_second / SHARD_GET_RECORDS_CALLS_PER_SEC, clock=self._clock, sleep=self._sleep
        )
        end_time = window.end_time
        reader = PollingShardReader(
            self.client,
            self.stream,
            partition,
            start,
            stop_at=stop,
            # At the tip the range is read only once its end has passed: a window reaching
            # into the future was marked finished when the reader first caught up, and the
            # records arriving within it afterwards were never read, by this run or a rerun.
            stop_at_tip=True if end_time is None else (lambda: datetime.now(UTC) >= end_time),
            budget=budget,
            observer=self.observer,
            config=self.config,
            clock=self._clock,
            sleep=self._sleep,
        )
        async for batch in reader:
            if batch.records:
                last = batch.records[-1].position
                yield batch.records, getattr(last, "sequence_number", "0")
