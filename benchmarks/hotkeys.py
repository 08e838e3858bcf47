"""Which keys make a shard hot: exact counts for small key spaces, Space-Saving beyond.

Space-Saving (Metwally et al.) keeps ``capacity`` counters; a key not yet tracked replaces
the smallest counter and inherits its count as possible overestimate (``error``).  Any key
with a true count above N/capacity is guaranteed to be tracked, which is all a hot-key
report needs, in bounded memory however many devices there are.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HeavyHitter", "KeyCounter"]


@dataclass(frozen=True, slots=True)
class HeavyHitter:
    key: str
    count: int
    error: int = 0  # the count may be overestimated by at most this much (0 when exact)


class KeyCounter:
    """Counts keys exactly up to ``exact_limit`` distinct keys, then switches to Space-Saving."""

    def __init__(self, exact_limit: int = 10_000, capacity: int = 1_000) -> None:
        self._exact_limit = exact_limit
        self._capacity = capacity
        self._counts: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        self._exact = True
        self.total = 0

    @property
    def exact(self) -> bool:
        return self._exact

    def add(self, key: str, count: int = 1) -> None:
        self.total += count
        counts = self._counts
        if key in counts:
            counts[key] += count
            return
        if self._exact and len(counts) < self._exact_limit:
            counts[key] = count
            return
        if self._exact:
            self._shrink_to_capacity()
        if len(counts) < self._capacity:
            counts[key] = count
            self._errors[key] = 0
            return
        victim = min(counts, key=counts.__getitem__)
        floor = counts.pop(victim)
        self._errors.pop(victim, None)
        counts[key] = floor + count
        self._errors[key] = floor

    def _shrink_to_capacity(self) -> None:
        """Leave exact mode keeping the largest counts, as Space-Saving would have."""
        self._exact = False
        kept = sorted(self._counts.items(), key=lambda item: item[1], reverse=True)[: self._capacity]
        self._counts = dict(kept)
        self._errors = dict.fromkeys(self._counts, 0)

    def top(self, n: int) -> list[HeavyHitter]:
        ranked = sorted(self._counts.items(), key=lambda item: item[1], reverse=True)[:n]
        return [HeavyHitter(key, count, self._errors.get(key, 0)) for key, count in ranked]
