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
