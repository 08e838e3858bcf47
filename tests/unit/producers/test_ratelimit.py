"""Per-shard token buckets with a fake clock."""

from __future__ import annotations

import pytest

from producers.ratelimit import ShardRateLimiter
from shardline.errors import ConfigurationError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_records_per_second_budget_then_wait() -> None:
    clock = FakeClock()
    limiter = ShardRateLimiter(clock=clock)
    for _ in range(1000):
        assert limiter.acquire("s1", 1, 10) == 0.0
    wait = limiter.acquire("s1", 1, 10)
    assert wait == pytest.approx(0.001)
    clock.now += wait
    assert limiter.acquire("s1", 1, 10) == 0.0


def test_hot_shard_does_not_delay_another_shard() -> None:
    clock = FakeClock()
    limiter = ShardRateLimiter(clock=clock)
    assert limiter.acquire("hot", 1, 1024 * 1024) == 0.0
    assert limiter.acquire("hot", 1, 1024) > 0
    assert limiter.acquire("cold", 1, 1024) == 0.0


def test_percentage_scales_the_bytes_budget() -> None:
    clock = FakeClock()
    limiter = ShardRateLimiter(50, clock=clock)
    assert limiter.acquire("s", 1, 512 * 1024) == 0.0
    wait = limiter.acquire("s", 1, 512 * 1024)
    assert wait == pytest.approx(1.0)


def test_entry_larger_than_the_bucket_passes_when_full_and_leaves_debt() -> None:
    clock = FakeClock()
    limiter = ShardRateLimiter(50, clock=clock)
    assert limiter.acquire("s", 1, 1024 * 1024) == 0.0
    wait = limiter.acquire("s", 1, 1)
    assert wait > 1.0  # in debt for the extra half MiB


def test_forget_resets_a_shard() -> None:
    clock = FakeClock()
    limiter = ShardRateLimiter(clock=clock)
    limiter.acquire("s", 1000, 1)
    assert limiter.acquire("s", 1, 1) > 0
    limiter.forget("s")
    assert limiter.acquire("s", 1, 1) == 0.0


def test_bad_percentage() -> None:
    with pytest.raises(ConfigurationError):
        ShardRateLimiter(0)


def test_paced_shards_due_in_one_step_share_the_same_grid_point() -> None:
    """Hot shards exhausted at different moments come back at the same instant, so the
    producer sends their backlogs in one request rather than one request per shard."""
    clock = FakeClock()
    limiter = ShardRateLimiter(visit=0.1, clock=clock)
    for shard in ("a", "b", "c"):
        assert limiter.acquire(shard, 1, 1024 * 1024) == 0.0  # each bucket spent
    due = set()
    for shard, now in (("a", 100.013), ("b", 100.041), ("c", 100.077)):
        wait = limiter.acquire(shard, 1, 100 * 1024, now)  # tokens back at 100.098
        assert wait >= 0.1  # at least one visit
        due.add(now + wait)
    assert len(due) == 1
    (point,) = due
    assert point == pytest.approx(100.2)
    clock.now = point
    assert all(limiter.acquire(shard, 1, 100 * 1024) == 0.0 for shard in ("a", "b", "c"))


def test_the_grid_waits_for_the_refill_when_it_is_longer_than_a_visit() -> None:
    clock = FakeClock()
    limiter = ShardRateLimiter(50, visit=0.1, clock=clock)
    assert limiter.acquire("s", 1, 512 * 1024) == 0.0
    wait = limiter.acquire("s", 1, 512 * 1024)  # a whole second to refill
    assert 1.0 <= wait < 1.1 + 1e-9
    assert (clock.now + wait) / 0.1 == pytest.approx(round((clock.now + wait) / 0.1))
    clock.now += wait
    assert limiter.acquire("s", 1, 512 * 1024) == 0.0


def test_visit_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        ShardRateLimiter(visit=1.5)


def test_a_clock_stepping_back_does_not_stop_the_refill_until_it_catches_up() -> None:
    # An injected clock (or a restored VM's) may step back: the bucket must refill from the
    # new reading on, not stay empty until the clock is past the old one again.
    clock = FakeClock()
    limiter = ShardRateLimiter(clock=clock)
    assert limiter.acquire("s", 1000, 1) == 0.0  # the whole second's budget, at t=100
    clock.now = 10.0  # ninety seconds back
    waits = []
    for _ in range(3):
        wait = limiter.acquire("s", 1, 1)
        assert 0 <= wait <= 1.0  # never negative, never longer than a full refill
        waits.append(wait)
        clock.now += max(wait, 0.001)
    assert 0.0 in waits  # the refill resumed within a second of clock time
    clock.now += 1.0
    assert limiter.acquire("s", 1000, 1) == 0.0
