"""Per-shard pacing: token buckets at a shard's write quota (1 MiB/s and 1000 records/s).

Each shard has its own pair of buckets, so a hot key that exhausts its shard waits on its
own while every other shard keeps sending; throttling is avoided rather than retried.  The
buckets are checked once per Kinesis entry batch, O(1), with time from an injectable clock
(no sliding windows summed on every send, which made peers slow).

A shard that must wait is visited again on a grid of ``visit`` seconds shared by every shard
(the producer's linger, at most half a second): it waits at least one visit, until the next
grid point after its tokens are back.  Without the grid each saturated shard kept its own
phase, so a stream with three hot shards made three PutRecords calls a visit, each carrying
one shard's aggregates (measured in stream-bench while a backlog drained: 2-3 entries a
call, ~0.7 ms of client CPU each); on the grid the shards due in the same step leave in one
request.  A bucket holds a second of budget, so waiting up to two visits (at most a second)
past the refill loses none of it for the 50 KiB aggregates the producer sends.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from shardline.errors import ConfigurationError
from shardline.limits import SHARD_WRITE_BYTES_PER_SEC, SHARD_WRITE_RECORDS_PER_SEC

__all__ = ["ShardRateLimiter"]


class _Bucket:
    """Two token buckets (entries, bytes) that refill continuously up to one second's worth."""

    __slots__ = ("bytes", "records", "updated")

    def __init__(self, records: float, nbytes: float, now: float) -> None:
        self.records = records
        self.bytes = nbytes
        self.updated = now


class ShardRateLimiter:
    """Token buckets per shard at ``percent`` of the write quota.

    :meth:`acquire` either takes the tokens and returns 0, or takes nothing and returns how
    many seconds to wait (with ``visit``, until the shared grid point; see the module
    docstring).  An entry bigger than a full bucket (a 1 MiB record at 80 %) is let through
    once the bucket is full, leaving it in debt, so it is delayed but never starved.
    """

    __slots__ = ("_buckets", "_bytes_rate", "_clock", "_records_rate", "_visit")

    def __init__(
        self,
        percent: float = 100.0,
        *,
        records_per_second: float = SHARD_WRITE_RECORDS_PER_SEC,
        bytes_per_second: float = SHARD_WRITE_BYTES_PER_SEC,
        visit: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < percent <= 100:
            raise ConfigurationError("rate limit percent must be in (0, 100]")
        if not 0 <= visit <= 1:
            raise ConfigurationError("the paced visit must be in [0, 1] seconds")
        self._records_rate = records_per_second * percent / 100.0
        self._bytes_rate = bytes_per_second * percent / 100.0
        self._visit = visit
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def _refilled(self, shard_id: str, now: float) -> _Bucket:
        bucket = self._buckets.get(shard_id)
        if bucket is None:
            bucket = _Bucket(self._records_rate, self._bytes_rate, now)
            self._buckets[shard_id] = bucket
            return bucket
        elapsed = now - bucket.updated
        if elapsed > 0:
            bucket.records = min(self._records_rate, bucket.records + elapsed * self._records_rate)
            bucket.bytes = min(self._bytes_rate, bucket.bytes + elapsed * self._bytes_rate)
        # Also when the clock stepped back (an injected clock, a restored VM's): no refill for
        # the step, and the refill runs from this reading on.  Left at the later reading, the
        # bucket stayed empty until the clock passed it again, while every wait this returned
        # said it was about to refill: the shard was polled, and starved, for the whole step.
        bucket.updated = now
        return bucket

    def acquire(self, shard_id: str, records: int, nbytes: int, now: float | None = None) -> float:
        """Take ``records`` entries and ``nbytes`` bytes of ``shard_id``'s budget, or say how long to wait.

        ``now`` is the caller's time when it has one: shards paced in one pass then share the
        same grid point exactly.
        """
        if now is None:
            now = self._clock()
        bucket = self._refilled(shard_id, now)
        need_records = min(records, self._records_rate)
        need_bytes = min(nbytes, self._bytes_rate)
        if bucket.records >= need_records and bucket.bytes >= need_bytes:
            bucket.records -= records
            bucket.bytes -= nbytes
            return 0.0
        wait_records = (need_records - bucket.records) / self._records_rate
        wait_bytes = (need_bytes - bucket.bytes) / self._bytes_rate
        wait = max(wait_records, wait_bytes, 0.0)
        visit = self._visit
        if visit > 0:
            # The grid point is computed from the absolute time, so every shard due in the same
            # step gets the very same float (then ``now + wait`` is that point again).
            wait = math.ceil((now + max(wait, visit)) / visit) * visit - now
        return wait

    def forget(self, shard_id: str) -> None:
        """Drop a closed shard's buckets (after a split or merge)."""
        self._buckets.pop(shard_id, None)
