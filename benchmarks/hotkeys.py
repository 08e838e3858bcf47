"""Which keys make a shard hot: exact counts for small key spaces, Space-Saving beyond.

Up to ``exact_limit`` distinct keys a plain dict counts exactly.  Beyond that the counter
switches to Space-Saving (:class:`~benchmarks.spacesaving.StreamSummary`, O(1) per record)
with ``capacity`` counters: any key with a true count above N/capacity is guaranteed to be
tracked, which is all a hot-key report needs, in bounded memory however many devices there
are.  Counters of disjoint streams (workers, shards) merge with their error bounds.

The load generator, which knows its devices by index, counts them exactly in a flat array
instead and builds each shard's counter once (:meth:`KeyCounter.from_ranked`): at 64 shards
and a million devices, feeding 64 summaries record by record cost 4.6 CPU-us a record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.spacesaving import StreamSummary

__all__ = ["HeavyHitter", "KeyCounter"]


@dataclass(frozen=True, slots=True)
class HeavyHitter:
    key: str
    count: int
    error: int = 0  # the count may be overestimated by at most this much (0 when exact)


class KeyCounter:
    """Counts keys exactly up to ``exact_limit`` distinct keys, then switches to Space-Saving."""

    __slots__ = ("_capacity", "_counts", "_exact_limit", "_summary", "total")

    def __init__(self, exact_limit: int = 10_000, capacity: int = 1_000) -> None:
        self._exact_limit = exact_limit
        self._capacity = capacity
        self._counts: dict[str, int] | None = {}
        self._summary: StreamSummary | None = None
        self.total = 0

    @property
    def exact(self) -> bool:
        return self._summary is None or self._summary.exact

    def add(self, key: str, count: int = 1) -> None:
        self.total += count
        counts = self._counts
        if counts is None:
            assert self._summary is not None
            self._summary.add(key, count)
            return
        if key in counts:
            counts[key] += count
        elif len(counts) < self._exact_limit:
            counts[key] = count
        else:
            self._to_summary().add(key, count)

    def update(self, counts: Iterable[tuple[str, int]]) -> None:
        """Many keys at once (a pacing tick's ``Counter.items()``)."""
        for key, count in counts:
            self.add(key, count)

    def _to_summary(self) -> StreamSummary:
        """Leave exact mode keeping the largest counts, as Space-Saving would have."""
        counts = self._counts
        assert counts is not None
        summary = _summary_of(counts, self._capacity)
        self._summary, self._counts = summary, None
        return summary

    def top(self, n: int) -> list[HeavyHitter]:
        if self._counts is not None:
            ranked = sorted(self._counts.items(), key=lambda item: item[1], reverse=True)[:n]
            return [HeavyHitter(key, count, 0) for key, count in ranked]
        assert self._summary is not None
        return [HeavyHitter(c.key, c.count, c.error) for c in self._summary.top(n)]

    # --- merging and serialising ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        if self._counts is not None:
            return {
                "exact_limit": self._exact_limit,
                "capacity": self._capacity,
                "total": self.total,
                "exact_counts": self._counts,
            }
        assert self._summary is not None
        return {
            "exact_limit": self._exact_limit,
            "capacity": self._capacity,
            "total": self.total,
            "summary": self._summary.to_dict(),
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> KeyCounter:
        counter = cls(int(document["exact_limit"]), int(document["capacity"]))
        counter.total = int(document["total"])
        if "exact_counts" in document:
            counter._counts = {str(k): int(v) for k, v in document["exact_counts"].items()}
        else:
            counter._counts = None
            counter._summary = StreamSummary.from_dict(document["summary"])
        return counter

    @classmethod
    def from_ranked(
        cls,
        ranked: Sequence[tuple[str, int]],
        *,
        total: int,
        distinct: int,
        exact_limit: int = 10_000,
        capacity: int = 1_000,
    ) -> KeyCounter:
        """The counter of a stream whose ``distinct`` keys were counted exactly elsewhere.

        ``ranked`` holds ``(key, count)`` largest first, at least as many as are kept: all of
        them while ``distinct`` fits ``exact_limit`` (the counter is exact, as :meth:`add`
        keeps it), else the ``capacity`` largest, exact, in a summary marked inexact (what
        :meth:`add` turns its exact counts into past the limit, without the error of counting
        on in Space-Saving).  The load generator counts per device index in a flat array and
        builds its shards' counters with this once, when they are read.
        """
        counter = cls(exact_limit, capacity)
        counter.total = total
        if distinct <= exact_limit:
            counter._counts = dict(ranked[:distinct])
        else:
            counter._counts = None
            counter._summary = _summary_of_ranked(ranked, total, capacity, dropped=True)
        return counter

    @classmethod
    def merged(cls, parts: Iterable[KeyCounter]) -> KeyCounter:
        """The counter of the union of disjoint streams: exact while the union fits, else bounded
        (with the smallest capacity of the parts, see :meth:`StreamSummary.merged`)."""
        parts = list(parts)
        exact_limit = max((p._exact_limit for p in parts), default=10_000)
        capacity = min((p._capacity for p in parts), default=1_000)
        merged = cls(exact_limit, capacity)
        merged.total = sum(p.total for p in parts)
        if all(p._counts is not None for p in parts):
            union: dict[str, int] = {}
            for part in parts:
                assert part._counts is not None
                for key, count in part._counts.items():
                    union[key] = union.get(key, 0) + count
            if len(union) <= exact_limit:
                merged._counts = union
                return merged
        summaries = [
            p._summary if p._summary is not None else _summary_of(p._counts or {}, capacity) for p in parts
        ]
        merged._counts = None
        merged._summary = StreamSummary.merged(summaries)
        return merged


def _summary_of(counts: dict[str, int], capacity: int) -> StreamSummary:
    """A Space-Saving summary of exact counts: the ``capacity`` largest, exact; the rest dropped."""
    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)
    return _summary_of_ranked(ranked, sum(counts.values()), capacity, dropped=len(ranked) > capacity)


def _summary_of_ranked(
    ranked: Sequence[tuple[str, int]], total: int, capacity: int, *, dropped: bool
) -> StreamSummary:
    """The summary keeping the first ``capacity`` of exact counts ranked largest first.

    A dropped key's count is at most the smallest kept one, which is what Space-Saving's
    minimum stands for, so the summary is marked as no longer exact when anything was dropped.
    """
    document = {
        "capacity": capacity,
        "total": total,
        "evictions": 1 if dropped else 0,
        "counters": [[key, count, 0] for key, count in ranked[:capacity]],
    }
    return StreamSummary.from_dict(document)
