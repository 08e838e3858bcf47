"""KeysInRange: the same answers as hashing every key, remembered within a bound."""

from __future__ import annotations

from shardline.shardmath import KeysInRange, cached_partition_key_hash, partition_key_hash

HALF = 2**127


def test_answers_equal_the_md5_range_check() -> None:
    keys = [f"key-{index}" for index in range(500)]
    check = KeysInRange(0, HALF - 1)
    for _ in range(2):  # first from the hashes, then from memory
        assert [check.contains(key) for key in keys] == [partition_key_hash(key) < HALF for key in keys]
    inside = [key for key in keys if partition_key_hash(key) < HALF]
    assert check.all_inside(inside)
    assert not check.all_inside([*inside, next(key for key in keys if key not in inside)])
    assert check.holds(HALF - 1) and not check.holds(HALF)


def test_memory_is_bounded_and_starts_over() -> None:
    check = KeysInRange(0, 2**128 - 1, max_keys=3)
    assert check.all_inside([f"k{index}" for index in range(10)])
    assert len(check._inside) <= 3
    assert check.contains("k0")


def test_cached_hash_equals_the_hash() -> None:
    for key in ("a", "ü-key", "x" * 256):
        assert cached_partition_key_hash(key) == partition_key_hash(key)
        assert cached_partition_key_hash(key) == partition_key_hash(key)


def test_a_key_without_a_utf8_form_is_outside_any_range() -> None:
    # a crafted GetRecords answer can carry one (a JSON "\ud800" escape): counted outside the
    # shard's range, not an exception that ends the reader
    keys = KeysInRange(0, 2**128 - 1)
    assert not keys.contains("dev-\ud800")
    assert not keys.all_inside(["a", "dev-\ud800"])
    assert keys.contains("a")
