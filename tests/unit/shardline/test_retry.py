"""Retry policy: only retriable Shardline errors, bounded attempts and deadline, full jitter."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import tenacity

from shardline.errors import (
    ConfigurationError,
    ResourceNotFoundError,
    ShardlineError,
    ThrottledError,
    TransientServiceError,
)
from shardline.retry import RetryPolicy, is_retriable


class FakeClock:
    """Stands in for tenacity's clock; sleeping advances it instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(tenacity, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


class Flaky:
    """Fails with the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    async def run(self) -> str:
        return self()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": True},
        {"max_attempts": 2.5},
        {"initial_backoff": -1},
        {"initial_backoff": 2.0, "max_backoff": 1.0},
        {"deadline": 0},
        {"deadline": -5},
    ],
)
def test_invalid_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_defaults_and_equality_ignore_the_random_source() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.initial_backoff, policy.max_backoff, policy.deadline) == (
        8,
        0.1,
        5.0,
        60.0,
    )
    assert policy == RetryPolicy(rng=random.Random(3))
    assert "rng" not in repr(policy)


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, rng=random.Random(7))
    assert [policy.max_delay(n) for n in (1, 2, 3, 4, 5, 9)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    draws = [policy.backoff(5) for _ in range(500)]
    assert all(0.0 <= d <= 1.0 for d in draws)
    assert min(draws) < 0.1 and max(draws) > 0.9  # spread over the whole window, not clustered
    assert policy.max_delay(0) == policy.max_delay(1)


def test_backoff_is_reproducible_with_a_seeded_source() -> None:
    first = RetryPolicy(rng=random.Random(42))
    second = RetryPolicy(rng=random.Random(42))
    assert [first.backoff(n) for n in range(1, 8)] == [second.backoff(n) for n in range(1, 8)]


def test_should_retry() -> None:
    policy = RetryPolicy(max_attempts=3, deadline=10.0)
    assert policy.should_retry(ThrottledError(), attempt=1, elapsed=0.0)
    assert policy.should_retry(ThrottledError(), attempt=2, elapsed=9.9)
    assert not policy.should_retry(ThrottledError(), attempt=3, elapsed=0.0)
    assert not policy.should_retry(ThrottledError(), attempt=1, elapsed=10.0)
    assert not policy.should_retry(ResourceNotFoundError(), attempt=1, elapsed=0.0)
    assert not policy.should_retry(ValueError(), attempt=1, elapsed=0.0)
    assert RetryPolicy(deadline=None).should_retry(ThrottledError(), attempt=1, elapsed=1e9)
    assert policy.should_retry(ShardlineError("x", retriable=True), attempt=1, elapsed=0.0)


def test_is_retriable() -> None:
    assert is_retriable(TransientServiceError())
    assert not is_retriable(ResourceNotFoundError())
    assert is_retriable(ResourceNotFoundError(retriable=True))
    assert not is_retriable(ConnectionError())


async def test_async_retries_retriable_errors_until_success(clock: FakeClock) -> None:
    flaky = Flaky(ThrottledError(), TransientServiceError())
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=4.0, rng=random.Random(1))
    assert await policy.call(flaky.run, sleep=clock.async_sleep) == "ok"
    assert flaky.calls == 3
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 0.5 and 0 <= clock.sleeps[1] <= 1.0


async def test_async_does_not_retry_final_or_foreign_errors(clock: FakeClock) -> None:
    for error in (ResourceNotFoundError("gone"), KeyError("bug")):
        flaky = Flaky(error)
        with pytest.raises(type(error)):
            await RetryPolicy().call(flaky.run, sleep=clock.async_sleep)
        assert flaky.calls == 1
    assert clock.sleeps == []


async def test_async_gives_up_after_max_attempts(clock: FakeClock) -> None:
    last = ThrottledError("third")
    flaky = Flaky(ThrottledError("first"), ThrottledError("second"), last, ThrottledError("never"))
    with pytest.raises(ThrottledError) as info:
        await RetryPolicy(max_attempts=3).call(flaky.run, sleep=clock.async_sleep)
    assert info.value is last and flaky.calls == 3


async def test_async_without_reraise_wraps_in_retry_error(clock: FakeClock) -> None:
    flaky = Flaky(*[ThrottledError() for _ in range(5)])
    retrying = RetryPolicy(max_attempts=2).async_retrying(reraise=False, sleep=clock.async_sleep)
    with pytest.raises(tenacity.RetryError):
        await retrying(flaky.run)
    assert flaky.calls == 2


async def test_async_stops_at_the_deadline(clock: FakeClock) -> None:
    # each wait is at most 8 s (max_backoff); the deadline of 20 s stops it long before 100 attempts
    flaky = Flaky(*[TransientServiceError() for _ in range(100)])
    policy = RetryPolicy(
        max_attempts=100, initial_backoff=8.0, max_backoff=8.0, deadline=20.0, rng=random.Random(0)
    )
    with pytest.raises(TransientServiceError):
        await policy.call(flaky.run, sleep=clock.async_sleep)
    assert flaky.calls < 100
    # the last attempt failed at or after the deadline, the one before it had not reached it
    assert sum(clock.sleeps[:-1]) < 20.0 <= sum(clock.sleeps)


def test_sync_twin_uses_the_same_strategy(clock: FakeClock) -> None:
    flaky = Flaky(ThrottledError(), ThrottledError())
    policy = RetryPolicy(max_attempts=3, rng=random.Random(2))
    assert policy.call_sync(flaky, sleep=clock.sleep) == "ok"
    assert flaky.calls == 3 and len(clock.sleeps) == 2
    final = Flaky(ResourceNotFoundError())
    with pytest.raises(ResourceNotFoundError):
        policy.sync_retrying(sleep=clock.sleep)(final)
    assert final.calls == 1


def test_before_sleep_hook_sees_each_retry(clock: FakeClock) -> None:
    seen: list[int] = []
    flaky = Flaky(ThrottledError(), ThrottledError())
    retrying = RetryPolicy().sync_retrying(
        sleep=clock.sleep, before_sleep=lambda state: seen.append(state.attempt_number)
    )
    assert retrying(flaky) == "ok"
    assert seen == [1, 2]


async def test_readers_condition_retries_throttles_on_and_transient_errors_a_bounded_number(
    clock: FakeClock,
) -> None:
    from shardline.errors import ExpiredIteratorError
    from shardline.retry import retry_throttles_and_transient

    policy = RetryPolicy(max_attempts=None, deadline=None, rng=random.Random(1))
    condition = retry_throttles_and_transient(2)
    throttled = Flaky(*[ThrottledError("slow down")] * 6)
    assert await policy.async_retrying(retry=condition, sleep=clock.async_sleep)(throttled.run) == "ok"
    assert throttled.calls == 7
    transient = Flaky(*[TransientServiceError("503")] * 3)
    with pytest.raises(TransientServiceError):
        await policy.async_retrying(retry=condition, sleep=clock.async_sleep)(transient.run)
    assert transient.calls == 3  # the first try and two retries
    expired = Flaky(ExpiredIteratorError("expired"))
    with pytest.raises(ExpiredIteratorError):
        await policy.async_retrying(retry=condition, sleep=clock.async_sleep)(expired.run)
    assert expired.calls == 1


def test_the_wait_is_a_public_tenacity_strategy() -> None:
    from tenacity.wait import wait_base

    policy = RetryPolicy(initial_backoff=0.1, max_backoff=0.4, rng=random.Random(3))
    wait = policy.sync_retrying().wait
    assert isinstance(wait, wait_base)
    assert [policy.max_delay(n) for n in (1, 2, 3, 4, 60, 5000)] == [0.1, 0.2, 0.4, 0.4, 0.4, 0.4]
