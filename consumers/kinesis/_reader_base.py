"""What every shard reader shares: its identity, where it resumes, and what it has seen.

:class:`~consumers.kinesis.polling.PollingShardReader` and
:class:`~consumers.kinesis.efo.FanOutShardReader` differ only in how they fetch (GetRecords
within a call budget, or a SubscribeToShard event stream); the state a caller inspects —
resume position, MillisBehindLatest, last delivered sequence number, whether the shard
ended — and the injectable clocks live here once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from consumers.kinesis.batch import ShardBatch
from consumers.kinesis.budget import Clock, Sleep
from consumers.kinesis.config import ReaderConfig
from consumers.kinesis.deaggregate import records_from_api
from consumers.kinesis.positions import StartPosition
from shardline.metrics import MetricsObserver, guard_observer
from shardline.records import ConsumedRecord
from shardline.shardmath import ShardInfo

__all__ = ["ShardReaderBase", "StopCondition", "WallClock", "utc_now"]

WallClock = Callable[[], datetime]
"""The current time, timezone-aware (injectable for tests)."""

StopCondition = Callable[[ConsumedRecord], bool]
"""True for the first record *beyond* a bounded read; the reader ends just before it."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class ShardReaderBase:
    """Shared state of a reader of one shard; subclasses implement :meth:`_batches`."""

    def __init__(
        self,
        client: Any,
        stream_name: str,
        shard_id: str,
        start: StartPosition,
        *,
        shard: ShardInfo | None,
        stop_at: StopCondition | None,
        config: ReaderConfig | None,
        observer: MetricsObserver | None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        wall_clock: WallClock = utc_now,
    ) -> None:
        self._client = client
        self._stream = stream_name
        self._shard_id = shard_id
        self._shard = shard
        self._resume = start
        self._stop_at = stop_at
        self._config = config if config is not None else ReaderConfig()
        self._observer: MetricsObserver = guard_observer(observer)
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._millis_behind_latest: int | None = None
        self._last_sequence_number: str | None = None
        self._finished = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(stream={self._stream!r}, shard={self._shard_id!r}, resume={self._resume})"
        )

    @property
    def shard_id(self) -> str:
        return self._shard_id

    @property
    def millis_behind_latest(self) -> int | None:
        """MillisBehindLatest of the last response or event, ``None`` before the first."""
        return self._millis_behind_latest

    @property
    def last_sequence_number(self) -> str | None:
        """Sequence number of the last record delivered (or skipped as already processed)."""
        return self._last_sequence_number

    @property
    def resume_position(self) -> StartPosition:
        """Where a new iterator or subscription would start: AFTER the last delivered record,
        else the start."""
        return self._resume

    @property
    def finished(self) -> bool:
        return self._finished

    def __aiter__(self) -> AsyncIterator[ShardBatch]:
        return self._batches()

    def _batches(self) -> AsyncIterator[ShardBatch]:
        raise NotImplementedError

    def _records(self, raw: Sequence[Mapping[str, Any]]) -> list[ConsumedRecord]:
        """The consumed records of a response's (or event's) raw records, skipping what a
        resume inside an aggregate already processed."""
        resume = self._resume
        return records_from_api(
            raw,
            stream=self._stream,
            shard_id=self._shard_id,
            shard=self._shard,
            skip=resume if resume.skip_through_sub_sequence is not None else None,
            observer=self._observer,
            policy=self._config.deaggregation,
        )
