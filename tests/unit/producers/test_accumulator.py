"""The accumulator: request limits, linger, shard separation, aggregate cap, re-planning."""

from __future__ import annotations

from typing import Any

from producers.accumulator import Accumulator, Entry, item_hash_key
from shardline.aggregation import AggregateBuilder, deaggregate
from shardline.limits import HASH_KEY_MAX, KiB, MiB
from shardline.shardmath import ShardInfo, ShardMap


def four_shards() -> ShardMap:
    width = (HASH_KEY_MAX + 1) // 4
    return ShardMap.from_shards(
        ShardInfo(f"shard-{i}", i * width, (i + 1) * width - 1 if i < 3 else HASH_KEY_MAX) for i in range(4)
    )


def make(
    aggregate: bool = True, agg_bytes: int = 50 * KiB, entries: int = 500, nbytes: int = 5 * MiB
) -> Accumulator:
    return Accumulator(
        aggregate=aggregate,
        builder_factory=lambda: AggregateBuilder(agg_bytes),
        max_entries=entries,
        max_bytes=nbytes,
    )


def admit_all(entry: Entry) -> float:
    return 0.0


def fill(acc: Accumulator, shard_map: ShardMap, count: int, size: int = 100, now: float = 0.0) -> list[Any]:
    items = []
    for i in range(count):
        key = f"key-{i % 97}"
        item = (key, None, bytes([i % 256]) * size, None, i)
        acc.add(shard_map.shard_for_key(key).shard_id, item, size + len(key), now, now + 30)
        items.append(item)
    return items


def take_all(acc: Accumulator, now: float = 0.0) -> list[list[Entry]]:
    acc.close_open()
    requests = []
    while acc.ready_entries:
        batch, expired, _ = acc.take(now, admit=admit_all, ordered=False)
        assert not expired
        requests.append(batch)
    return requests


def test_plain_requests_respect_500_entries() -> None:
    acc = make(aggregate=False)
    fill(acc, four_shards(), 1201)
    requests = take_all(acc)
    assert [len(r) for r in requests] == [500, 500, 201]
    assert all(not e.aggregated for r in requests for e in r)


def test_requests_respect_5_mib() -> None:
    acc = make(aggregate=False)
    fill(acc, four_shards(), 30, size=400 * KiB)
    requests = take_all(acc)
    assert all(sum(e.size for e in r) <= 5 * MiB for r in requests)
    assert sum(len(r) for r in requests) == 30
    assert len(requests) >= 3


def test_aggregates_never_mix_shards_and_respect_the_size_cap() -> None:
    shard_map = four_shards()
    acc = make(agg_bytes=10 * KiB)
    items = fill(acc, shard_map, 2000)
    requests = take_all(acc)
    seen = []
    for request in requests:
        for entry in request:
            assert len(entry.data) <= 10 * KiB
            users = deaggregate(entry.data) if entry.aggregated else None
            records = (
                [(u.partition_key, u.data) for u in users] if users else [(entry.partition_key, entry.data)]
            )
            for key, _ in records:
                assert shard_map.shard_for_key(key).shard_id == entry.shard_id
            assert records == [(i[0], i[2]) for i in entry.items]
            # The entry's explicit hash key pins the aggregate inside its shard.
            ehk = entry.explicit_hash_key
            assert ehk is None or shard_map.shard_for_hash(ehk).shard_id == entry.shard_id
            seen.extend(entry.items)
    assert sorted(i[4] for i in seen) == [i[4] for i in items]


def test_full_request_is_signalled_and_linger_base_is_the_oldest_open_aggregate() -> None:
    acc = make(aggregate=False, entries=10)
    shard_map = four_shards()
    assert acc.oldest_open is None
    fill(acc, shard_map, 3, now=5.0)
    fill(acc, shard_map, 3, now=7.0)
    assert acc.oldest_open == 5.0
    assert not acc.has_full_request
    fill(acc, shard_map, 4, now=8.0)
    assert acc.has_full_request


def test_close_open_by_age_closes_only_old_aggregates() -> None:
    acc = make()
    acc.add("a", ("k", None, b"x", None, 0), 2, 1.0, 100)
    acc.add("b", ("k", None, b"y", None, 1), 2, 2.0, 100)
    acc.close_open(created_before=1.5)
    assert acc.ready_shards() == ["a"]
    assert acc.oldest_open == 2.0


def test_expired_entries_are_returned_not_sent() -> None:
    acc = make(aggregate=False)
    acc.add("a", ("k", None, b"x", None, 0), 2, 0.0, 1.0)
    acc.close_open()
    batch, expired, _ = acc.take(2.0, admit=admit_all, ordered=False)
    assert batch == [] and len(expired) == 1


def test_paced_shard_waits_while_others_go() -> None:
    acc = make(aggregate=False)
    acc.add("hot", ("h", None, b"x", None, 0), 2, 0.0, 100)
    acc.add("cold", ("c", None, b"x", None, 1), 2, 0.0, 100)
    acc.close_open()
    batch, _, wake = acc.take(0.0, admit=lambda e: 0.5 if e.shard_id == "hot" else 0.0, ordered=False)
    assert [e.shard_id for e in batch] == ["cold"]
    assert wake == 0.5
    assert acc.ready_shards() == ["hot"]


def test_ordered_takes_each_key_once_per_request_and_skips_busy_shards() -> None:
    acc = make(aggregate=False)
    for i, key in enumerate(["a", "b", "a", "c"]):
        acc.add("s1", (key, None, b"x", None, i), 2, 0.0, 100)
    acc.add("s2", ("z", None, b"x", None, 9), 2, 0.0, 100)
    acc.close_open()
    batch, _, _ = acc.take(0.0, admit=admit_all, ordered=True, busy={"s2"})
    assert [e.items[0][4] for e in batch] == [0, 1]
    batch, _, _ = acc.take(0.0, admit=admit_all, ordered=True, busy={"s2"})
    assert [e.items[0][4] for e in batch] == [2, 3]


def test_requeue_puts_failed_entries_first_and_backoff_blocks_the_shard() -> None:
    acc = make(aggregate=False)
    for i in range(3):
        acc.add("s", (f"k{i}", None, b"x", None, i), 3, 0.0, 100)
    acc.close_open()
    batch, _, _ = acc.take(0.0, admit=admit_all, ordered=False)
    acc.add("s", ("k9", None, b"x", None, 9), 3, 0.0, 100)
    acc.close_open()
    batch[1].not_before = 5.0
    acc.requeue([batch[1]])
    blocked, _, wake = acc.take(1.0, admit=admit_all, ordered=False)
    assert blocked == [] and wake == 5.0
    later, _, _ = acc.take(5.0, admit=admit_all, ordered=False)
    assert [e.items[0][4] for e in later] == [1, 9]


def test_replan_splits_aggregates_that_now_span_two_shards() -> None:
    one = ShardMap.from_shards([ShardInfo("parent", 0, HASH_KEY_MAX)])
    acc = make()
    items = fill(acc, one, 300)
    acc.close_open()
    fill(acc, one, 10)  # still open
    half = (HASH_KEY_MAX + 1) // 2
    two = ShardMap.from_shards(
        [
            ShardInfo("parent", 0, HASH_KEY_MAX, ending_sequence_number="9"),
            ShardInfo("left", 0, half - 1, parent_shard_id="parent"),
            ShardInfo("right", half, HASH_KEY_MAX, parent_shard_id="parent"),
        ]
    )
    split = acc.replan(two, 1.0)
    assert split >= 1
    requests = take_all(acc)
    entries = [e for r in requests for e in r]
    assert {e.shard_id for e in entries} == {"left", "right"}
    for entry in entries:
        for item in entry.items:
            assert two.shard_for_hash(item_hash_key(item)).shard_id == entry.shard_id
    assert sum(len(e.items) for e in entries) == len(items) + 10
