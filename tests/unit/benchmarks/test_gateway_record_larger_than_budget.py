"""A record larger than one second of a shard's byte budget is admitted, and paid for over time.

The write-bytes bucket holds one second's worth.  At ``scale_percent=10`` that is about
102 KiB, so a 200 KB record (or a record of a stream whose maximum record size was raised
past 1 MiB, at AWS's own limits) never fitted and was throttled on every attempt for ever.
"""

from __future__ import annotations

from benchmarks.gateway import ManualClock, ShardLimits
from benchmarks.gateway.limits import ShardBudget

RECORD = 200_000


def test_record_over_a_seconds_budget_is_admitted_when_the_bucket_is_full() -> None:
    clock = ManualClock()
    budget = ShardBudget(ShardLimits(scale_percent=10), clock)
    assert budget.admit_write(RECORD)
    # in debt now: not even a one-byte record until the debt is paid back...
    bucket = budget.write_bytes
    clock.advance((RECORD - bucket.capacity) / bucket.rate - 0.01)
    assert not budget.admit_write(1)
    # ...and the next large one only once the bucket is full again
    clock.advance(bucket.capacity / bucket.rate - 0.01)
    assert not budget.admit_write(RECORD)
    clock.advance(0.02)
    assert budget.admit_write(RECORD)


def test_oversized_records_keep_the_scaled_byte_rate() -> None:
    clock = ManualClock()
    limits = ShardLimits(scale_percent=10)
    budget = ShardBudget(limits, clock)
    seconds, tick = 200, 0.01
    admitted = 0
    for _ in range(round(seconds / tick)):
        if budget.admit_write(RECORD):
            admitted += 1
        clock.advance(tick)
    byte_rate = limits.scaled(limits.write_bytes_per_sec)
    assert admitted > 0
    # never more than the rate plus one record's burst; below it only by the clock's ticks
    assert admitted * RECORD <= byte_rate * seconds + RECORD
    assert admitted * RECORD >= byte_rate * seconds * 0.99 - RECORD


def test_records_within_a_seconds_budget_are_still_refused_when_short() -> None:
    clock = ManualClock()
    budget = ShardBudget(ShardLimits(write_bytes_per_sec=100), clock)
    assert budget.admit_write(60)
    assert not budget.admit_write(60)
    assert not budget.admit_write(150)  # larger than the bucket: only when it is full
    clock.advance(1)
    assert budget.admit_write(150)
    assert not budget.admit_write(1)
