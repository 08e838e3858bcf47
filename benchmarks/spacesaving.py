"""Space-Saving over a stream-summary: the heaviest keys of a stream in O(1) per record.

Space-Saving (Metwally, Agrawal and El Abbadi, 2005) keeps ``capacity`` counters.  A key not
yet tracked takes over the smallest counter and inherits its count as a possible
overestimate (``error``); any key whose true count exceeds ``total / capacity`` is always
tracked.  The stream-summary keeps the counters in buckets of equal count, linked in count
order, with a hash map from key to bucket: a unit increment moves one key to the next
bucket and eviction takes any key of the first bucket, so neither scans the counters.

Two summaries of disjoint streams merge (Agarwal et al., "Mergeable summaries", 2012): a
key missing from one side may have had up to that side's minimum count there, so the
merged count adds each side's count (or its minimum) and the merged error adds the errors
(or the minimum); the merge keeps the ``capacity`` largest (the smallest capacity of the
parts) and stays an upper bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Counted", "StreamSummary"]


@dataclass(frozen=True, slots=True)
class Counted:
    """A tracked key: ``count`` is an upper bound, at most ``error`` above the true count."""

    key: str
    count: int
    error: int


class _Bucket:
    """All keys with one count, a node of the count-ordered doubly linked list."""

    __slots__ = ("count", "keys", "next", "prev")

    def __init__(self, count: int) -> None:
        self.count = count
        self.keys: dict[str, None] = {}
        self.prev: _Bucket | None = None
        self.next: _Bucket | None = None


class StreamSummary:
    """Space-Saving with ``capacity`` counters; exact while fewer keys than that were seen."""

    __slots__ = ("_bucket_of", "_errors", "_head", "capacity", "evictions", "total")

    def __init__(self, capacity: int = 1_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.total = 0
        self.evictions = 0
        """How many keys took over another's counter (0: every count is exact)."""
        self._bucket_of: dict[str, _Bucket] = {}
        self._errors: dict[str, int] = {}
        self._head: _Bucket | None = None  # the smallest count

    @property
    def exact(self) -> bool:
        return self.evictions == 0

    def __len__(self) -> int:
        return len(self._bucket_of)

    @property
    def min_count(self) -> int:
        """The smallest tracked count when full (an untracked key's count is at most this); else 0."""
        if self._head is None or len(self._bucket_of) < self.capacity:
            return 0
        return self._head.count

    def add(self, key: str, count: int = 1) -> None:
        """Count ``key`` ``count`` more times: O(1) for a unit increment."""
        self.total += count
        bucket = self._bucket_of.get(key)
        if bucket is None:
            if len(self._bucket_of) < self.capacity:
                self._errors[key] = 0
                self._insert(key, count)
                return
            head = self._head
            assert head is not None
            # Any key of the smallest count may go.  popitem() takes the most recent one in
            # O(1); taking the oldest (next(iter(...))) walked past every key already deleted
            # from the front of the dict, so an eviction cost grew with the capacity.
            victim, _ = head.keys.popitem()
            del self._bucket_of[victim]
            self._errors.pop(victim)
            self._errors[key] = head.count
            self.evictions += 1
            # the newcomer takes the victim's counter, raised by ``count``
            self._place(key, head, head.count + count)
            if not head.keys:
                self._unlink(head)
            return
        self._move_up(key, bucket, bucket.count + count)

    def update(self, counts: Iterable[tuple[str, int]]) -> None:
        for key, count in counts:
            self.add(key, count)

    def top(self, n: int) -> list[Counted]:
        """The ``n`` largest counts, largest first."""
        ranked = sorted(self._bucket_of.items(), key=lambda item: item[1].count, reverse=True)[:n]
        return [Counted(key, bucket.count, self._errors[key]) for key, bucket in ranked]

    def items(self) -> list[Counted]:
        return self.top(len(self._bucket_of))

    # --- merging and serialising -----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "total": self.total,
            "evictions": self.evictions,
            "counters": [[c.key, c.count, c.error] for c in self.items()],
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> StreamSummary:
        summary = cls(int(document["capacity"]))
        summary._load(
            [(str(k), int(c), int(e)) for k, c, e in document["counters"]],
            int(document["total"]),
            int(document["evictions"]),
        )
        return summary

    @classmethod
    def merged(cls, parts: Iterable[StreamSummary]) -> StreamSummary:
        """One summary of the union of disjoint streams, counts and errors still upper bounds.

        It has the smallest capacity of the parts: a key heavier than total / capacity is
        then still tracked, and a summary that lost keys is full, so its minimum bounds an
        untracked key for the next merge.  (With the largest, a part of a smaller capacity
        that had evicted keys could merge into a summary not full, whose minimum of 0 told
        the next merge that the keys it lost had never been seen.)
        """
        parts = list(parts)
        capacity = min((p.capacity for p in parts), default=1)
        keys: set[str] = set()
        for part in parts:
            keys.update(part._bucket_of)
        merged: list[tuple[str, int, int]] = []
        for key in keys:
            count = error = 0
            for part in parts:
                bucket = part._bucket_of.get(key)
                if bucket is None:
                    floor = part.min_count  # what the key may have had there, untracked
                    count += floor
                    error += floor
                else:
                    count += bucket.count
                    error += part._errors[key]
            merged.append((key, count, error))
        merged.sort(key=lambda item: item[1], reverse=True)
        summary = cls(capacity)
        dropped = len(merged) > capacity
        summary._load(
            merged[:capacity],
            sum(p.total for p in parts),
            sum(p.evictions for p in parts) + (1 if dropped else 0),
        )
        return summary

    def _load(self, counters: list[tuple[str, int, int]], total: int, evictions: int) -> None:
        """Track ``counters`` (distinct keys) in one pass in count order: each new count's
        bucket goes after the last one made, instead of a walk from the head per key (which
        made loading n distinct counts O(n^2): minutes for a crafted partial's million)."""
        last: _Bucket | None = None
        for key, count, error in sorted(counters, key=lambda item: item[1]):
            self._errors[key] = error
            if last is None or last.count != count:
                last = self._link_after(last, count)
            last.keys[key] = None
            self._bucket_of[key] = last
        self.total = total
        self.evictions = evictions

    # --- the linked list ------------------------------------------------------------------

    def _insert(self, key: str, count: int) -> None:
        """Track a new key at ``count``, walking from the head (O(1) for small counts)."""
        before: _Bucket | None = None
        bucket = self._head
        while bucket is not None and bucket.count < count:
            before, bucket = bucket, bucket.next
        if bucket is None or bucket.count != count:
            bucket = self._link_after(before, count)
        bucket.keys[key] = None
        self._bucket_of[key] = bucket

    def _move_up(self, key: str, bucket: _Bucket, count: int) -> None:
        """Move ``key`` from ``bucket`` to the bucket of ``count`` (one step for a unit increment)."""
        del bucket.keys[key]
        self._place(key, bucket, count)
        if not bucket.keys:
            self._unlink(bucket)

    def _place(self, key: str, start: _Bucket, count: int) -> None:
        """Put ``key`` in the bucket of ``count``, searched from ``start`` (whose count is <= it)."""
        target = start
        while target.next is not None and target.next.count <= count:
            target = target.next
        if target.count != count:
            target = self._link_after(target, count)
        target.keys[key] = None
        self._bucket_of[key] = target

    def _link_after(self, before: _Bucket | None, count: int) -> _Bucket:
        bucket = _Bucket(count)
        after = self._head if before is None else before.next
        bucket.prev, bucket.next = before, after
        if before is None:
            self._head = bucket
        else:
            before.next = bucket
        if after is not None:
            after.prev = bucket
        return bucket

    def _unlink(self, bucket: _Bucket) -> None:
        if bucket.prev is None:
            self._head = bucket.next
        else:
            bucket.prev.next = bucket.next
        if bucket.next is not None:
            bucket.next.prev = bucket.prev
