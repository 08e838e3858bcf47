"""Whole-job rate caps for a distributed replay, shared out among the slices that run.

A job's caps (records read per second, records written per second) hold for the job as a
whole, however many runners it has: each runner takes ``cap / live slices`` and adjusts its
share whenever its heartbeat counts the slices that run (see
:mod:`consumers.replay.slices`).  So a backfill spread over 50 machines reads and writes no
faster than one configured budget, and a stream's live consumers and a sink's other writers
keep the rest.

:class:`RecordRate` is a token bucket in records per second whose rate can change while
callers wait; :class:`CappedReader` and :class:`CappedSink` apply one to a range reader's
batches and to a sink's writes.  A batch larger than the bucket is let through once the
bucket is full and leaves it in debt, so the long-run rate holds without splitting batches.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from consumers.kinesis.budget import Clock, Sleep
from consumers.replay.ranges import RangeReader
from consumers.sinks.base import Sink
from shardline.errors import ConfigurationError
from shardline.records import ConsumedRecord

__all__ = ["CappedReader", "CappedSink", "RecordRate"]


class RecordRate:
    """A token bucket of ``rate`` records per second (``None``: no limit) holding one second's worth."""

    def __init__(
        self, rate: float | None, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._rate: float | None = None
        self._tokens = 0.0
        self._updated = clock()
        self.set_rate(rate)

    def __repr__(self) -> str:
        return f"RecordRate(rate={self._rate!r})"

    @property
    def rate(self) -> float | None:
        return self._rate

    def set_rate(self, rate: float | None) -> None:
        """Change the rate (a new share of the job's cap); waiting callers pick it up."""
        if rate is not None and not rate > 0:
            raise ConfigurationError("a record rate must be positive (or None for no limit)")
        self._refill()
        self._rate = rate
        if rate is not None:
            self._tokens = min(self._tokens, rate)

    def _refill(self) -> None:
        now = self._clock()
        if self._rate is not None:
            self._tokens = min(self._rate, self._tokens + (now - self._updated) * self._rate)
        self._updated = now

    async def acquire(self, records: int) -> None:
        """Wait until ``records`` may pass (in order of arrival), then take them."""
        if records <= 0 or self._rate is None:
            return
        async with self._lock:
            while True:
                self._refill()
                rate = self._rate
                if rate is None:
                    return
                need = min(float(records), rate)
                if self._tokens >= need:
                    self._tokens -= records
                    return
                await self._sleep(min((need - self._tokens) / rate, 1.0))


class CappedReader:
    """A :class:`RangeReader` whose batches pass through ``rate`` before they are handed on."""

    def __init__(self, reader: RangeReader, rate: RecordRate) -> None:
        self.reader = reader
        self.rate = rate

    def __repr__(self) -> str:
        return f"CappedReader({self.reader!r}, {self.rate!r})"

    async def partitions(self) -> list[str]:
        return await self.reader.partitions()

    async def read(
        self, partition: str, after: str | None
    ) -> AsyncIterator[tuple[Sequence[ConsumedRecord], str]]:
        async for records, token in self.reader.read(partition, after):
            await self.rate.acquire(len(records))
            yield records, token


class CappedSink:
    """A sink whose writes pass through ``rate``; everything else is the wrapped sink's."""

    def __init__(self, sink: Sink, rate: RecordRate) -> None:
        self.sink = sink
        self.rate = rate
        self.written = 0

    def __repr__(self) -> str:
        return f"CappedSink({self.sink!r}, {self.rate!r})"

    def __getattr__(self, name: str) -> object:
        return getattr(self.sink, name)

    async def write(self, batch: Sequence[ConsumedRecord]) -> Any:
        """Wait for the batch's share of the rate, then write it; the sink's answer is passed on."""
        await self.rate.acquire(len(batch))
        write: Any = self.sink.write  # the sink's own signature decides what it answers
        result = await write(batch)
        self.written += len(batch)
        return result

    async def close(self) -> None:
        await self.sink.close()
