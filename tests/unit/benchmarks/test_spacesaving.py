"""Space-Saving over a stream-summary: its guarantees hold, alone and merged."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from benchmarks.hotkeys import KeyCounter
from benchmarks.spacesaving import StreamSummary


def _zipf_stream(n: int, keys: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    weights = [1.0 / rank**1.1 for rank in range(1, keys + 1)]
    return [f"k{i}" for i in rng.choices(range(keys), weights=weights, k=n)]


def _assert_space_saving_bounds(summary: StreamSummary, truth: Counter[str]) -> None:
    total = sum(truth.values())
    assert summary.total == total
    tracked = {c.key: c for c in summary.items()}
    for key, counted in tracked.items():
        assert truth[key] <= counted.count <= truth[key] + counted.error, key
    # every key heavier than total/capacity is tracked
    for key, count in truth.items():
        if count > total / summary.capacity:
            assert key in tracked, key


def test_exact_below_capacity() -> None:
    summary = StreamSummary(capacity=10)
    for key in ["a", "b", "a", "c", "a", "b"]:
        summary.add(key)
    assert summary.exact
    assert [(c.key, c.count, c.error) for c in summary.top(3)] == [("a", 3, 0), ("b", 2, 0), ("c", 1, 0)]


@pytest.mark.parametrize("capacity", [1, 7, 50])
def test_bounds_hold_on_a_skewed_stream(capacity: int) -> None:
    stream = _zipf_stream(20_000, 2_000, seed=capacity)
    summary = StreamSummary(capacity)
    for key in stream:
        summary.add(key)
    assert not summary.exact
    assert len(summary) == capacity
    # Space-Saving's invariant: the counters add up to the stream's length
    assert sum(c.count for c in summary.items()) == len(stream)
    _assert_space_saving_bounds(summary, Counter(stream))


def test_weighted_adds_match_unit_adds_in_bounds() -> None:
    stream = _zipf_stream(10_000, 500, seed=3)
    summary = StreamSummary(40)
    for start in range(0, len(stream), 100):  # a pacing tick's Counter at a time
        summary.update(Counter(stream[start : start + 100]).items())
    _assert_space_saving_bounds(summary, Counter(stream))
    assert sum(c.count for c in summary.items()) == len(stream)


def test_merge_of_disjoint_streams_keeps_the_bounds() -> None:
    parts = [_zipf_stream(8_000, 1_000, seed=s) for s in (1, 2, 3)]
    summaries = []
    for part in parts:
        summary = StreamSummary(60)
        for key in part:
            summary.add(key)
        summaries.append(StreamSummary.from_dict(summary.to_dict()))  # as a partial result carries it
    merged = StreamSummary.merged(summaries)
    truth = Counter(key for part in parts for key in part)
    assert merged.total == sum(len(p) for p in parts)
    _assert_space_saving_bounds(merged, truth)
    assert merged.top(1)[0].key == truth.most_common(1)[0][0]


def test_key_counter_merges_exactly_while_the_union_fits() -> None:
    a, b = KeyCounter(exact_limit=100), KeyCounter(exact_limit=100)
    a.add("x", 3)
    a.add("y")
    b.add("x", 2)
    merged = KeyCounter.merged([KeyCounter.from_dict(a.to_dict()), KeyCounter.from_dict(b.to_dict())])
    assert merged.exact
    assert merged.total == 6
    assert [(h.key, h.count, h.error) for h in merged.top(2)] == [("x", 5, 0), ("y", 1, 0)]


def test_key_counter_switches_to_space_saving_and_merges_with_error_bounds() -> None:
    streams = [_zipf_stream(6_000, 3_000, seed=s) for s in (5, 6)]
    counters = []
    for stream in streams:
        counter = KeyCounter(exact_limit=200, capacity=50)
        for key in stream:
            counter.add(key)
        assert not counter.exact
        counters.append(KeyCounter.from_dict(counter.to_dict()))
    merged = KeyCounter.merged(counters)
    truth = Counter(key for stream in streams for key in stream)
    assert merged.total == sum(truth.values())
    for hitter in merged.top(10):
        assert truth[hitter.key] <= hitter.count <= truth[hitter.key] + hitter.error
    assert merged.top(1)[0].key == truth.most_common(1)[0][0]


def test_a_stream_of_new_keys_evicts_on_every_add_and_keeps_the_summary_whole() -> None:
    """A million devices drawn uniformly: nearly every key is new, so nearly every add evicts
    a key of the smallest count (stream-bench's 64-shard, 1,000,000-key run)."""
    rng = random.Random(11)
    stream = [f"device-{i}" for i in rng.choices(range(1_000_000), k=30_000)]
    summary = StreamSummary(capacity=2_000)
    for start in range(0, len(stream), 10):
        summary.update(Counter(stream[start : start + 10]).items())
    assert summary.evictions >= len(set(stream)) - 2_000 - 1
    assert len(summary) == 2_000
    assert sum(c.count for c in summary.items()) == len(stream)
    _assert_space_saving_bounds(summary, Counter(stream))
    # the buckets: strictly increasing counts, none empty, each key where the map says
    bucket, previous, seen = summary._head, 0, 0
    while bucket is not None:
        assert bucket.count > previous and bucket.keys
        assert all(summary._bucket_of[key] is bucket for key in bucket.keys)
        previous, seen, bucket = bucket.count, seen + len(bucket.keys), bucket.next
    assert seen == len(summary)


def test_a_counter_from_exact_ranked_counts_is_exact_within_its_limit_and_a_bounded_summary_past_it() -> None:
    counts = Counter({f"k{i}": 1 + (i * 7919) % 97 for i in range(300)})
    ranked = counts.most_common()
    total = sum(counts.values())

    small = KeyCounter.from_ranked(ranked, total=total, distinct=300, exact_limit=300, capacity=50)
    assert small.exact and small.total == total
    assert {h.key: h.count for h in small.top(300)} == dict(counts)

    big = KeyCounter.from_ranked(ranked[:50], total=total, distinct=300, exact_limit=299, capacity=50)
    assert not big.exact and big.total == total
    top = big.top(50)
    assert [(h.key, h.count, h.error) for h in top] == [(k, c, 0) for k, c in ranked[:50]]
    assert KeyCounter.from_dict(big.to_dict()).top(50) == top  # a partial result carries it whole
    # and it merges like any counter: a heavy key seen by both parts adds up
    other = KeyCounter(exact_limit=299, capacity=50)
    other.add(ranked[0][0], 1_000)
    merged = KeyCounter.merged([big, other])
    assert merged.top(1)[0].key == ranked[0][0]
    assert merged.top(1)[0].count >= ranked[0][1] + 1_000
