"""Capped exponential back-off with full jitter, shared by the readers."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["jittered"]


def jittered(attempt: int, initial: float, maximum: float, jitter: Callable[[], float]) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): uniform in [0, min(max, initial * 2**attempt)].

    Full jitter spreads the retries of many readers throttled at the same moment, which is
    what keeps them from being throttled together again.
    """
    ceiling: float = min(maximum, initial * float(2 ** min(attempt, 30)))
    return ceiling * jitter()
