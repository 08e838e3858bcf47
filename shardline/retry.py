"""Retry policy: which errors to retry, how long to wait, when to give up (on tenacity).

Only :class:`~shardline.errors.ShardlineError` instances with ``retriable=True`` are retried:
map third-party errors with :mod:`shardline.errormap` first.  The wait is "full jitter"
exponential back-off (a uniform draw between 0 and ``initial_backoff * 2**(attempt-1)``,
capped at ``max_backoff``): tenacity's ``wait_random_exponential`` with an injectable random
source, so many producers throttled by the same shard do not retry in lock-step.

One :class:`RetryPolicy` serves three kinds of caller with the same strategy objects:

* ``await policy.call(fn)`` / ``policy.async_retrying()`` around a whole async call;
* ``policy.call_sync(fn)`` / ``policy.sync_retrying()`` for blocking code;
* ``policy.backoff(n)`` and ``policy.should_retry(...)`` for callers that schedule retries
  themselves, such as a producer resending only the failed entries of a partial PutRecords.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import tenacity
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from shardline.errors import ConfigurationError, ShardlineError, ThrottledError, TransientServiceError

__all__ = ["RetryPolicy", "is_retriable", "retry_throttles_and_transient"]

_T = TypeVar("_T")


def is_retriable(error: BaseException) -> bool:
    """True for a Shardline error whose ``retriable`` flag is set; never for anything else."""
    return isinstance(error, ShardlineError) and error.retriable


class _FullJitter(wait_base):
    """Full-jitter exponential wait (as tenacity's ``wait_random_exponential``) on an injected
    random source.  A tenacity wait strategy (public ``wait_base``), so the retry controllers
    use it as is; :meth:`delay` serves callers that schedule retries themselves."""

    def __init__(self, multiplier: float, maximum: float, rng: random.Random) -> None:
        self._multiplier = multiplier
        self._maximum = maximum
        self._rng = rng

    def ceiling(self, attempt_number: int) -> float:
        """Upper bound of the wait after ``attempt_number`` failed attempts."""
        exponent = max(1, attempt_number) - 1
        if exponent >= 1024:  # 2.0 ** 1024 overflows; the cap applies long before
            return self._maximum
        return min(self._multiplier * 2.0**exponent, self._maximum)

    def delay(self, attempt_number: int) -> float:
        """A draw under :meth:`ceiling`."""
        return self._rng.uniform(0.0, self.ceiling(attempt_number))

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return self.delay(retry_state.attempt_number)


class _ThrottlesAndTransient(tenacity.retry_base):
    def __init__(self, max_transient: int) -> None:
        self._max_transient = max_transient

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        outcome = retry_state.outcome
        if outcome is None or not outcome.failed:
            return False
        error = outcome.exception()
        if isinstance(error, ThrottledError):
            return True
        return isinstance(error, TransientServiceError) and retry_state.attempt_number <= self._max_transient


def retry_throttles_and_transient(max_transient: int) -> tenacity.retry_base:
    """A tenacity retry condition for readers: throttling is retried for as long as it lasts
    (the caller's policy bounds it, if at all), a :class:`TransientServiceError` (5xx, dropped
    connection) for at most ``max_transient`` retries of the call; nothing else."""
    return _ThrottlesAndTransient(max_transient)


class _Elapsed:
    """Quacks as the event ``tenacity.stop_when_event_set`` polls: set once ``deadline``
    seconds have passed on ``clock`` since ``started``."""

    __slots__ = ("_clock", "_deadline", "_started")

    def __init__(self, clock: Callable[[], float], started: float, deadline: float) -> None:
        self._clock, self._started, self._deadline = clock, started, deadline

    def is_set(self) -> bool:
        return self._clock() - self._started >= self._deadline


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with full-jitter exponential back-off.

    max_attempts:    attempts in total, the first included (>= 1); ``None`` for no limit.
    initial_backoff: ceiling of the first wait in seconds; doubles per attempt (>= 0).
    max_backoff:     ceiling of any single wait in seconds (>= initial_backoff).
    deadline:        seconds from the first attempt after which no new attempt starts;
                     ``None`` for attempts only.  With both ``None`` the policy retries
                     retriable errors forever (a caller that must not give up on an outage,
                     such as a consumer pausing its reads until the sink is back).
    rng:             random source of the jitter; pass ``random.Random(seed)`` in tests.
    """

    max_attempts: int | None = 8
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    deadline: float | None = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    _wait: _FullJitter = field(init=False, compare=False, repr=False)
    _stop: stop_base = field(init=False, compare=False, repr=False)
    _retry: tenacity.retry_base = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts is not None:
            if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
                raise ConfigurationError("max_attempts must be an int or None")
            if self.max_attempts < 1:
                raise ConfigurationError("max_attempts must be >= 1")
        if self.initial_backoff < 0:
            raise ConfigurationError("initial_backoff must be >= 0")
        if self.max_backoff < self.initial_backoff:
            raise ConfigurationError("max_backoff must be >= initial_backoff")
        if self.deadline is not None and self.deadline <= 0:
            raise ConfigurationError("deadline must be > 0 or None")
        stop: stop_base = tenacity.stop_never
        if self.max_attempts is not None:
            stop = tenacity.stop_after_attempt(self.max_attempts)
        if self.deadline is not None:
            stop = stop | tenacity.stop_after_delay(self.deadline)
        object.__setattr__(self, "_wait", _FullJitter(self.initial_backoff, self.max_backoff, self.rng))
        object.__setattr__(self, "_stop", stop)
        object.__setattr__(self, "_retry", tenacity.retry_if_exception(is_retriable))

    def backoff(self, attempt: int) -> float:
        """A full-jitter delay before the next try, after ``attempt`` failed attempts (1-based)."""
        return self._wait.delay(attempt)

    def max_delay(self, attempt: int) -> float:
        """The ceiling :meth:`backoff` draws under for ``attempt``."""
        return self._wait.ceiling(attempt)

    def should_retry(self, error: BaseException, attempt: int, elapsed: float) -> bool:
        """Whether to try again after ``attempt`` failed attempts taking ``elapsed`` seconds."""
        if not is_retriable(error):
            return False
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return False
        return self.deadline is None or elapsed < self.deadline

    def async_retrying(
        self,
        *,
        reraise: bool = True,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        before_sleep: Callable[[tenacity.RetryCallState], Any] | None = None,
        retry: tenacity.retry_base | None = None,
        wait: wait_base | None = None,
        clock: Callable[[], float] | None = None,
    ) -> tenacity.AsyncRetrying:
        """A tenacity controller for async code; with ``reraise`` the last error propagates.

        ``retry`` replaces the default condition (retriable Shardline errors), e.g. with
        :func:`retry_throttles_and_transient`; ``wait`` the policy's back-off (a caller whose
        wait depends on the error); the policy's stop stays.  ``clock`` (monotonic seconds)
        times the policy's ``deadline`` from this call on, for callers whose time is injected
        (tenacity's own ``stop_after_delay`` reads the process clock, which an injected
        ``sleep`` never advances).
        """
        options: dict[str, Any] = {}
        if sleep is not None:
            options["sleep"] = sleep
        return tenacity.AsyncRetrying(
            stop=self._stop if clock is None else self._stop_on(clock),
            wait=wait if wait is not None else self._wait,
            retry=retry if retry is not None else self._retry,
            reraise=reraise,
            before_sleep=before_sleep,
            **options,
        )

    def _stop_on(self, clock: Callable[[], float]) -> stop_base:
        """The policy's stop with its deadline timed on ``clock``, from now."""
        stop: stop_base = tenacity.stop_never
        if self.max_attempts is not None:
            stop = tenacity.stop_after_attempt(self.max_attempts)
        if self.deadline is not None:
            stop = stop | tenacity.stop_when_event_set(_Elapsed(clock, clock(), self.deadline))  # type: ignore[arg-type]
        return stop

    def sync_retrying(
        self,
        *,
        reraise: bool = True,
        sleep: Callable[[float], None] | None = None,
        before_sleep: Callable[[tenacity.RetryCallState], Any] | None = None,
        retry: tenacity.retry_base | None = None,
    ) -> tenacity.Retrying:
        """The blocking twin of :meth:`async_retrying`, with the same strategy objects."""
        options: dict[str, Any] = {}
        if sleep is not None:
            options["sleep"] = sleep
        return tenacity.Retrying(
            stop=self._stop,
            wait=self._wait,
            retry=retry if retry is not None else self._retry,
            reraise=reraise,
            before_sleep=before_sleep,
            **options,
        )

    async def call(
        self,
        fn: Callable[[], Awaitable[_T]],
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> _T:
        """Await ``fn()`` until it succeeds, fails for good, or the policy gives up."""
        result: _T = await self.async_retrying(sleep=sleep)(fn)
        return result

    def call_sync(self, fn: Callable[[], _T], *, sleep: Callable[[float], None] | None = None) -> _T:
        """Call ``fn()`` until it succeeds, fails for good, or the policy gives up."""
        result: _T = self.sync_retrying(sleep=sleep)(fn)
        return result
