"""Hot-key counters keep their promises through any split and merge of a stream.

``stream-bench merge`` folds the key counters of workers, shards and machines into one, in
whatever grouping the partials arrive, and a partial is untrusted input read back from JSON.
Whatever the split, the counting path (record by record, a pacing tick's ``Counter`` at a
time, or the generator's exact counts ranked) and the grouping of merges, the merged counter
must keep what its report states: the total; for each key it names, a count that is an upper
bound at most ``error`` above the true count; every key heavier than total / capacity named;
and exact counts when it says it is exact.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from benchmarks.hotkeys import KeyCounter

_KEYS = [f"device-{n}" for n in range(40)]


def _counted(stream: list[str], mode: str, exact_limit: int, capacity: int) -> KeyCounter:
    """One part's counter, built the way one of the bench's paths builds it."""
    if mode == "ranked":  # the load generator: exact counts in an array, a counter when read
        counts = Counter(stream)
        return KeyCounter.from_ranked(
            counts.most_common(),
            total=len(stream),
            distinct=len(counts),
            exact_limit=exact_limit,
            capacity=capacity,
        )
    counter = KeyCounter(exact_limit=exact_limit, capacity=capacity)
    if mode == "ticks":
        for start in range(0, len(stream), 7):
            counter.update(Counter(stream[start : start + 7]).items())
    else:
        for key in stream:
            counter.add(key)
    return counter


def _merge(counters: list[KeyCounter], grouping: list[int]) -> KeyCounter:
    """Merge as partials arrive: in groups first (workers of a machine), then the groups."""
    groups: list[list[KeyCounter]] = []
    for index, counter in enumerate(counters):
        group = grouping[index] if index < len(grouping) else 0
        while len(groups) <= group:
            groups.append([])
        groups[group].append(counter)
    merged = [KeyCounter.merged(group) for group in groups if group]
    return merged[0] if len(merged) == 1 else KeyCounter.merged(merged)


def _assert_promises(counter: KeyCounter, truth: Counter[str]) -> None:
    total = sum(truth.values())
    assert counter.total == total
    named = {hitter.key: hitter for hitter in counter.top(len(truth) + 1)}
    for key, hitter in named.items():
        assert hitter.count - hitter.error <= truth[key] <= hitter.count, (key, hitter, truth[key])
    if counter.exact:
        assert {key: hitter.count for key, hitter in named.items()} == dict(truth)
        assert all(hitter.error == 0 for hitter in named.values())
        return
    capacity = counter._capacity
    for key, count in truth.items():
        if count * capacity > total:
            assert key in named, (key, count, total, capacity)


_parts = st.lists(
    st.tuples(
        st.lists(st.sampled_from(_KEYS[:12]) | st.sampled_from(_KEYS), min_size=0, max_size=120),
        st.sampled_from(["one", "ticks", "ranked"]),
        st.integers(min_value=1, max_value=12),  # exact limit
        st.integers(min_value=1, max_value=10),  # capacity
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Partials of different capacities: the merge took the largest, so a part of capacity 1 that
# had dropped a key merged into a summary of capacity 3 holding one key, which neither named
# that key (2 records, one each: both heavier than 2/3) nor bounded it for a later merge.
@example(parts=[([], "one", 1, 3), (["device-0", "device-1"], "one", 1, 1)], shared=False, grouping=[])
@given(parts=_parts, shared=st.booleans(), grouping=st.lists(st.integers(0, 2), max_size=5))
def test_merged_key_counters_keep_their_bounds(
    parts: list[tuple[list[str], str, int, int]], shared: bool, grouping: list[int]
) -> None:
    first_limit, first_capacity = parts[0][2], parts[0][3]
    counters = []
    for stream, mode, exact_limit, capacity in parts:
        if shared:  # one run's workers all count with the same limits
            exact_limit, capacity = first_limit, first_capacity
        counter = _counted(stream, mode, exact_limit, capacity)
        _assert_promises(counter, Counter(stream))
        counters.append(KeyCounter.from_dict(counter.to_dict()))  # as a partial carries it
    merged = _merge(counters, grouping)
    _assert_promises(merged, Counter(key for stream, _, _, _ in parts for key in stream))
