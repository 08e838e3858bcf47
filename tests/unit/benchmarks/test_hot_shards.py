"""A planted hot key is reported on the shard its MD5 hash maps to, with a recommendation."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from benchmarks.hotkeys import KeyCounter
from benchmarks.shardload import KEY_SUMMARY_CAPACITY, ShardLoadTracker, analyse_hot_shards
from shardline.shardmath import ShardMap


def md5_shard(shard_map: ShardMap, key: str) -> str:
    """Independent of shardline.shardmath's routing: the 128-bit MD5 against the hash ranges."""
    hashed = int.from_bytes(hashlib.md5(key.encode()).digest(), "big")
    return next(s.shard_id for s in shard_map.shards if s.starting_hash_key <= hashed <= s.ending_hash_key)


def test_planted_hot_key_is_reported_on_its_md5_shard(make_shard_map: Callable[[int], ShardMap]) -> None:
    shard_map = make_shard_map(8)
    tracker = ShardLoadTracker([s.shard_id for s in shard_map.shards])
    planted = "sensor-planted-42"
    for second in range(10):
        for n in range(800):  # background: 800 keys spread evenly
            key = f"device-{n}"
            tracker.add(shard_map.shard_for_key(key).shard_id, second, key, 200)
        for _ in range(1500):  # the planted key alone: 1500 records/s, over the 1000/s limit
            tracker.add(shard_map.shard_for_key(planted).shard_id, second, planted, 200)

    analysis = analyse_hot_shards(tracker, duration_seconds=10, aggregated=False)

    expected = md5_shard(shard_map, planted)
    assert [h["shard_id"] for h in analysis["hot_shards"]] == [expected]
    hot = analysis["hot_shards"][0]
    assert hot["top_keys"][0]["key"] == planted
    assert hot["top_keys"][0]["count"] == 15_000
    assert hot["seconds_over_limit"] == 10
    assert "salt" in hot["recommendation"] and planted in hot["recommendation"]
    assert analysis["shards"][expected]["records_per_sec_peak"] >= 1500
    assert analysis["keys_exact"]


def test_even_load_has_no_hot_shard_and_reshard_target_follows_peak(
    make_shard_map: Callable[[int], ShardMap],
) -> None:
    shard_map = make_shard_map(4)
    tracker = ShardLoadTracker([s.shard_id for s in shard_map.shards])
    for second in range(3):
        for shard in shard_map.shards:
            for n in range(100):
                tracker.add(shard.shard_id, second, f"{shard.shard_id}-{n}", 1000)
    analysis = analyse_hot_shards(tracker, duration_seconds=3)
    assert analysis["hot_shards"] == []
    assert analysis["reshard_to"] == 1  # 400 KB/s in total fits one shard at 80%


def test_aggregation_judges_only_bytes(make_shard_map: Callable[[int], ShardMap]) -> None:
    shard_map = make_shard_map(2)
    tracker = ShardLoadTracker([s.shard_id for s in shard_map.shards])
    first = shard_map.shards[0].shard_id
    for _ in range(2000):
        tracker.add(first, 0, "k", 10)
    assert analyse_hot_shards(tracker, aggregated=True)["shards"][first]["seconds_over_limit"] == 0
    assert analyse_hot_shards(tracker, aggregated=False)["shards"][first]["seconds_over_limit"] == 1


def test_exact_key_counting_is_a_budget_for_the_run_not_for_each_shard() -> None:
    """10,000 exact counters a shard held 640,000 keys at 64 shards and a million devices."""
    from benchmarks.shardload import EXACT_KEYS_PER_RUN, MIN_EXACT_KEYS

    few = ShardLoadTracker([f"shard-{n}" for n in range(4)])
    many = ShardLoadTracker([f"shard-{n}" for n in range(64)])
    for tracker in (few, many):
        for n in range(3_000):  # one shard, 3,000 distinct keys, one of them hot
            tracker.add("shard-0", 0, f"device-{n}", 100)
            tracker.add("shard-0", 0, "device-hot", 100)
    assert few.keys("shard-0").exact  # 10,000 a shard at 4 shards: as before
    assert not many.keys("shard-0").exact  # 40,000 / 64 < 1,000: Space-Saving past 1,000
    for tracker in (few, many):
        top = tracker.keys("shard-0").top(1)[0]
        assert top.key == "device-hot" and top.count - top.error <= 3_000 <= top.count
    assert EXACT_KEYS_PER_RUN // 4 == 10_000 and MIN_EXACT_KEYS == 1_000
    for n in range(3_000):  # a shard the run learns of later (a reshard) gets the same budget
        many.add("shard-99", 0, f"device-{n}", 100)
    assert not many.keys("shard-99").exact


def test_a_key_source_is_asked_once_when_keys_are_first_read_and_merges_with_keys_counted_here() -> None:
    tracker = ShardLoadTracker(["a", "b"], exact_key_limit=10)
    calls: list[tuple[int, int]] = []

    def source(exact_limit: int, capacity: int) -> dict[str, KeyCounter]:
        calls.append((exact_limit, capacity))
        return {
            "a": KeyCounter.from_ranked([("hot", 5), ("x", 1)], total=6, distinct=2, exact_limit=exact_limit),
            "c": KeyCounter.from_ranked([("y", 2)], total=2, distinct=1, exact_limit=exact_limit),
        }

    tracker.count_keys_with(source)
    tracker.add_counts("a", 0, 6, 600)
    tracker.add("a", 0, "hot", 100)  # a record counted the per-record way
    assert calls == []  # nothing built while the run sends
    assert {h.key: h.count for h in tracker.keys("a").top(5)} == {"hot": 6, "x": 1}
    assert tracker.keys("c").total == 2 and "c" in tracker.shard_ids
    tracker.to_dict()
    assert calls == [(10, KEY_SUMMARY_CAPACITY)]
    assert tracker.per_second(1)["a"] == {"records": [7], "bytes": [700]}
