"""The per-shard GetRecords call budget.

Kinesis allows 5 GetRecords calls per second per shard, shared by *every* application that
polls the shard.  A reader therefore takes only a configurable share of it, so a live consumer,
a replay job and a second application can coexist without throttling each other.  The budget is
a token bucket with an injectable clock and sleep, so tests drive it without real time passing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from shardline.errors import ValidationError
from shardline.limits import SHARD_GET_RECORDS_CALLS_PER_SEC

__all__ = ["CallBudget", "Clock", "Sleep"]

Clock = Callable[[], float]
"""Monotonic seconds."""

Sleep = Callable[[float], Awaitable[None]]
"""An ``asyncio.sleep``-like coroutine function."""

_EPSILON = 1e-9


class CallBudget:
    """A token bucket granting ``share`` x 5 calls per second to one shard reader.

    ``burst`` is how many calls may be made back to back after an idle period (default 1: an
    even pace, which is what keeps several readers of one shard from colliding).
    """

    __slots__ = ("_burst", "_clock", "_lock", "_rate", "_sleep", "_tokens", "_updated")

    def __init__(
        self,
        share: float = 1.0,
        *,
        calls_per_second: float = SHARD_GET_RECORDS_CALLS_PER_SEC,
        burst: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not 0.0 < share <= 1.0:
            raise ValidationError("a GetRecords budget share must be in (0, 1]")
        if calls_per_second <= 0:
            raise ValidationError("calls_per_second must be positive")
        if burst < 1.0:
            raise ValidationError("burst must be at least one call")
        self._rate = calls_per_second * share
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = burst
        self._updated = clock()
        self._lock = asyncio.Lock()

    @property
    def calls_per_second(self) -> float:
        return self._rate

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)

    def try_acquire(self) -> float:
        """Take a call if one is available; otherwise return the seconds until one is (0.0 = taken)."""
        self._refill()
        if self._tokens >= 1.0 - _EPSILON:  # float rounding must not leave a waiter spinning
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self._rate

    async def acquire(self) -> None:
        """Wait until a call is allowed, then take it."""
        async with self._lock:
            while (wait := self.try_acquire()) > 0.0:
                await self._sleep(wait)
