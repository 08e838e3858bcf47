"""Per-shard budgets of the limit-enforcing gateway.

AWS meters each shard separately: writes at 1 MiB/s and 1000 records/s, reads at five
GetRecords calls/s and 2 MiB/s.  The gateway models each budget as a token bucket holding
one second's worth, refilled continuously from an injectable clock, so a test can drive
time by hand and get the same answer on any machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from shardline.errors import ConfigurationError
from shardline.limits import (
    SHARD_GET_RECORDS_CALLS_PER_SEC,
    SHARD_READ_BYTES_PER_SEC,
    SHARD_WRITE_BYTES_PER_SEC,
    SHARD_WRITE_RECORDS_PER_SEC,
)

__all__ = ["Clock", "ManualClock", "ShardBudget", "ShardLimits", "TokenBucket"]

Clock = Callable[[], float]
"""Monotonic seconds; ``time.monotonic`` by default, a :class:`ManualClock` in tests."""


class ManualClock:
    """A clock that moves only when told, so limit tests never depend on wall-clock speed."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ConfigurationError("a clock cannot go backwards")
        self._now += seconds


@dataclass(frozen=True, slots=True)
class ShardLimits:
    """The per-shard quotas the gateway enforces.

    Defaults are AWS's documented quotas (from :mod:`shardline.limits`).  ``scale_percent``
    scales every quota at once, e.g. 10 to see throttling at a tenth of the real load on a
    slow machine.  ``enforce_writes``/``enforce_reads`` switch a side off while its traffic
    is still counted in the stats.
    """

    write_records_per_sec: int = SHARD_WRITE_RECORDS_PER_SEC
    write_bytes_per_sec: int = SHARD_WRITE_BYTES_PER_SEC
    read_calls_per_sec: int = SHARD_GET_RECORDS_CALLS_PER_SEC
    read_bytes_per_sec: int = SHARD_READ_BYTES_PER_SEC
    scale_percent: float = 100.0
    enforce_writes: bool = True
    enforce_reads: bool = True

    def __post_init__(self) -> None:
        for name in (
            "write_records_per_sec",
            "write_bytes_per_sec",
            "read_calls_per_sec",
            "read_bytes_per_sec",
        ):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"ShardLimits.{name} must be positive")
        if not self.scale_percent > 0:
            raise ConfigurationError("ShardLimits.scale_percent must be positive")

    @classmethod
    def unenforced(cls) -> ShardLimits:
        """Count traffic per shard but throttle nothing (an emulator's own behaviour)."""
        return cls(enforce_writes=False, enforce_reads=False)

    def scaled(self, quota: int) -> float:
        return quota * self.scale_percent / 100.0


class TokenBucket:
    """``rate`` tokens per second, holding at most one second's worth.

    ``take`` refuses when the tokens are short; ``charge`` always deducts and may go below
    zero, which is how AWS treats a GetRecords that returned more than the read budget: the
    following calls are throttled until the debt is paid back.
    """

    __slots__ = ("_clock", "_stamp", "_tokens", "capacity", "rate")

    def __init__(self, rate: float, clock: Clock) -> None:
        self.rate = rate
        # at least one request's worth: scaled below 1 call/s (--limits-percent 10 makes
        # GetRecords 0.5 calls/s) a bucket of ``rate`` tokens could never admit a call
        self.capacity = max(rate, 1.0)
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._stamp = now

    def available(self) -> float:
        self._refill()
        return self._tokens

    def take(self, amount: float) -> bool:
        self._refill()
        if amount > self._tokens:
            return False
        self._tokens -= amount
        return True

    def charge(self, amount: float) -> None:
        self._refill()
        self._tokens -= amount

    def give_back(self, amount: float) -> None:
        """Return what was taken or charged for something that did not happen (never past full)."""
        self._refill()
        self._tokens = min(self.capacity, self._tokens + amount)


class ShardBudget:
    """The four buckets of one shard."""

    __slots__ = ("_limits", "read_bytes", "read_calls", "write_bytes", "write_records")

    def __init__(self, limits: ShardLimits, clock: Clock | None = None) -> None:
        clock = clock or time.monotonic
        self._limits = limits
        self.write_records = TokenBucket(limits.scaled(limits.write_records_per_sec), clock)
        self.write_bytes = TokenBucket(limits.scaled(limits.write_bytes_per_sec), clock)
        self.read_calls = TokenBucket(limits.scaled(limits.read_calls_per_sec), clock)
        self.read_bytes = TokenBucket(limits.scaled(limits.read_bytes_per_sec), clock)

    def admit_write(self, size: int) -> bool:
        """Reserve one record of ``size`` bytes; False (and nothing reserved) when over budget.

        A record larger than a whole second's byte budget (a 200 KB record at
        ``scale_percent=10``, or a record of a stream whose maximum record size was raised
        past 1 MiB) could never be admitted by a bucket that holds one second's worth, and
        its producer would retry forever.  It is admitted when the bucket is full and leaves
        it in debt, so the shard's rate over time is still exactly the budget.
        """
        if not self._limits.enforce_writes:
            return True
        needed = min(size, self.write_bytes.capacity)
        if self.write_records.available() < 1 or self.write_bytes.available() < needed:
            return False
        self.write_records.take(1)
        self.write_bytes.charge(size)
        return True

    def release_write(self, size: int) -> None:
        """Give back what :meth:`admit_write` reserved for a record the backend did not write.

        The gateway meters a write before forwarding it; when the emulator behind it then
        fails the call or the entry, the stream took nothing, and a budget still charged for
        it throttled the records after it that AWS would have taken.
        """
        if not self._limits.enforce_writes:
            return
        self.write_records.give_back(1)
        self.write_bytes.give_back(size)

    def admit_read_call(self) -> bool:
        """One GetRecords call; refused while calls or the read-bytes debt are over budget."""
        if not self._limits.enforce_reads:
            return True
        if self.read_bytes.available() <= 0:
            return False
        return self.read_calls.take(1)

    def charge_read_bytes(self, size: int) -> None:
        if self._limits.enforce_reads:
            self.read_bytes.charge(size)
