"""RetryPolicy without an attempt limit or deadline: retriable errors are retried forever."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import tenacity

from shardline.errors import ConfigurationError, ResourceNotFoundError, ThrottledError
from shardline.retry import RetryPolicy


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += 3600.0  # an hour per retry: no deadline may end it


UNBOUNDED = RetryPolicy(max_attempts=None, deadline=None, initial_backoff=0.0, max_backoff=0.0)


def test_should_retry_never_gives_up_on_retriable_errors() -> None:
    assert UNBOUNDED.should_retry(ThrottledError(), attempt=10**9, elapsed=1e12)
    assert not UNBOUNDED.should_retry(ResourceNotFoundError(), attempt=1, elapsed=0.0)
    assert not UNBOUNDED.should_retry(ValueError(), attempt=1, elapsed=0.0)


def test_unbounded_attempts_can_still_have_a_deadline() -> None:
    policy = RetryPolicy(max_attempts=None, deadline=5.0)
    assert policy.should_retry(ThrottledError(), attempt=10**6, elapsed=4.9)
    assert not policy.should_retry(ThrottledError(), attempt=2, elapsed=5.0)


async def test_async_retrying_keeps_going_past_any_attempt_count(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(tenacity, "time", SimpleNamespace(monotonic=clock.monotonic))
    failures = 250
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise ThrottledError("busy")
        return "ok"

    assert await UNBOUNDED.call(flaky, sleep=clock.sleep) == "ok"
    assert calls == failures + 1
    assert clock.sleeps == failures


def test_backoff_of_an_unbounded_policy_stays_capped() -> None:
    policy = RetryPolicy(
        max_attempts=None, deadline=None, initial_backoff=0.1, max_backoff=2.0, rng=random.Random(1)
    )
    assert all(0.0 <= policy.backoff(attempt) <= 2.0 for attempt in (1, 10, 1000, 10**6))


@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_bad_attempt_limits_are_still_rejected(value: object) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(max_attempts=value)  # type: ignore[arg-type]
