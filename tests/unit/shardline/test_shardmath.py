"""Shard math: MD5 routing as Kinesis does it, the shard map, lineage and ListShards paging."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardline.errors import ConfigurationError, ShardNotFoundError, TransientServiceError
from shardline.limits import HASH_KEY_MAX
from shardline.shardmath import ShardInfo, ShardMap, list_shards, partition_key_hash
from tests.kinesis_sync import list_shards_sync


def even_shards(count: int, prefix: str = "shardId-") -> list[ShardInfo]:
    step = (HASH_KEY_MAX + 1) // count
    return [
        ShardInfo(
            shard_id=f"{prefix}{i:012d}",
            starting_hash_key=i * step,
            ending_hash_key=HASH_KEY_MAX if i == count - 1 else (i + 1) * step - 1,
            starting_sequence_number="1",
        )
        for i in range(count)
    ]


def api_shape(shard: ShardInfo) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "ShardId": shard.shard_id,
        "HashKeyRange": {
            "StartingHashKey": str(shard.starting_hash_key),
            "EndingHashKey": str(shard.ending_hash_key),
        },
        "SequenceNumberRange": {},
    }
    if shard.starting_sequence_number:
        shape["SequenceNumberRange"]["StartingSequenceNumber"] = shard.starting_sequence_number
    if shard.parent_shard_id:
        shape["ParentShardId"] = shard.parent_shard_id
    if shard.adjacent_parent_shard_id:
        shape["AdjacentParentShardId"] = shard.adjacent_parent_shard_id
    if shard.ending_sequence_number:
        shape["SequenceNumberRange"]["EndingSequenceNumber"] = shard.ending_sequence_number
    return shape


def test_partition_key_hash_matches_known_md5_values() -> None:
    # MD5("a") = 0cc175b9c0f1b6a831c399e269772661
    assert partition_key_hash("a") == 0x0CC175B9C0F1B6A831C399E269772661
    assert partition_key_hash("ü") == int.from_bytes(hashlib.md5("ü".encode()).digest(), "big")


@given(st.text(min_size=1, max_size=256))
def test_partition_key_hash_is_in_the_128_bit_range(key: str) -> None:
    assert 0 <= partition_key_hash(key) <= HASH_KEY_MAX


def test_shard_info_from_api_parses_every_field() -> None:
    shard = ShardInfo.from_api(
        {
            "ShardId": "shardId-000000000002",
            "ParentShardId": "shardId-000000000000",
            "AdjacentParentShardId": "shardId-000000000001",
            "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(HASH_KEY_MAX)},
            "SequenceNumberRange": {"StartingSequenceNumber": "100", "EndingSequenceNumber": "200"},
        }
    )
    assert shard.starting_hash_key == 0 and shard.ending_hash_key == HASH_KEY_MAX
    assert shard.parents == ("shardId-000000000000", "shardId-000000000001")
    assert not shard.is_open
    assert shard.starting_sequence_number == "100"


def test_open_shard_without_parents() -> None:
    shard = ShardInfo.from_api(
        {"ShardId": "s", "HashKeyRange": {"StartingHashKey": "10", "EndingHashKey": "20"}}
    )
    assert shard.is_open and shard.parents == ()
    assert shard.contains(10) and shard.contains(20)
    assert not shard.contains(9) and not shard.contains(21)


@given(st.integers(min_value=0, max_value=HASH_KEY_MAX), st.integers(min_value=1, max_value=17))
def test_shard_for_hash_picks_the_owning_shard(hash_key: int, count: int) -> None:
    shard_map = ShardMap.from_shards(even_shards(count))
    owner = shard_map.shard_for_hash(hash_key)
    assert owner.contains(hash_key)
    assert [s for s in shard_map.open_shards if s.contains(hash_key)] == [owner]


def test_shard_for_hash_boundaries() -> None:
    shards = even_shards(4)
    shard_map = ShardMap.from_shards(reversed(shards))
    assert shard_map.open_shards == tuple(shards)
    assert shard_map.shard_for_hash(0) is shards[0]
    assert shard_map.shard_for_hash(HASH_KEY_MAX) is shards[3]
    assert shard_map.shard_for_hash(shards[1].starting_hash_key) is shards[1]
    assert shard_map.shard_for_hash(shards[1].starting_hash_key - 1) is shards[0]


def test_shard_for_hash_raises_when_no_open_shard_owns_the_key() -> None:
    shards = even_shards(2)
    shard_map = ShardMap.from_shards([shards[1]])
    with pytest.raises(ShardNotFoundError):
        shard_map.shard_for_hash(0)
    with pytest.raises(ShardNotFoundError):
        ShardMap.from_shards([]).shard_for_key("k")


def test_shard_for_key_routes_by_md5_and_by_explicit_hash_key() -> None:
    shard_map = ShardMap.from_shards(even_shards(8))
    for key in ("a", "device-17", "ü"):
        assert shard_map.shard_for_key(key).contains(partition_key_hash(key))
        # second call is served from the cache and must agree
        assert shard_map.shard_for_key(key).contains(partition_key_hash(key))
    assert shard_map.shard_for_key("a", explicit_hash_key=HASH_KEY_MAX).shard_id.endswith("7")


def test_key_cache_is_bounded() -> None:
    shard_map = ShardMap.from_shards(even_shards(4), key_cache_size=10)
    for i in range(100):
        shard_map.shard_for_key(f"k{i}")
    assert len(shard_map._key_cache) == 10
    assert "k99" in shard_map._key_cache and "k0" not in shard_map._key_cache
    uncached = ShardMap.from_shards(even_shards(4), key_cache_size=0)
    uncached.shard_for_key("x")
    assert uncached._key_cache == {}
    with pytest.raises(ConfigurationError):
        ShardMap.from_shards([], key_cache_size=-1)


def lineage() -> ShardMap:
    """0 and 1 merged into 2; 2 split into 3 and 4; 5 is an untouched original."""
    half = (HASH_KEY_MAX + 1) // 2
    quarter = half // 2
    shards = [
        ShardInfo("s0", 0, quarter - 1, ending_sequence_number="9"),
        ShardInfo("s1", quarter, half - 1, ending_sequence_number="9"),
        ShardInfo("s2", 0, half - 1, "s0", "s1", ending_sequence_number="19"),
        ShardInfo("s3", 0, quarter - 1, "s2"),
        ShardInfo("s4", quarter, half - 1, "s2"),
        ShardInfo("s5", half, HASH_KEY_MAX),
    ]
    return ShardMap.from_api(api_shape(s) for s in shards)


def test_lineage_children_and_parents() -> None:
    shard_map = lineage()
    assert [s.shard_id for s in shard_map.children_of("s2")] == ["s3", "s4"]
    assert [s.shard_id for s in shard_map.children_of("s0")] == ["s2"]
    assert [s.shard_id for s in shard_map.parents_of("s2")] == ["s0", "s1"]
    assert shard_map.parents_of("s0") == () and shard_map.parents_of("unknown") == ()
    assert [s.shard_id for s in shard_map.open_shards] == ["s3", "s4", "s5"]
    assert shard_map.get("s2") is not None and shard_map.get("nope") is None
    assert "s5" in shard_map and len(shard_map) == 6


def test_ready_to_read_follows_lineage() -> None:
    shard_map = lineage()

    def ids(finished: set[str]) -> list[str]:
        return sorted(s.shard_id for s in shard_map.ready_to_read(finished))

    assert ids(set()) == ["s0", "s1", "s5"]
    assert ids({"s0"}) == ["s1", "s5"]
    assert ids({"s0", "s1"}) == ["s2", "s5"]
    assert ids({"s0", "s1", "s2"}) == ["s3", "s4", "s5"]


def test_ready_to_read_treats_expired_parents_as_finished() -> None:
    shard_map = ShardMap.from_shards([ShardInfo("child", 0, HASH_KEY_MAX, "trimmed-parent")])
    assert [s.shard_id for s in shard_map.ready_to_read(set())] == ["child"]


def test_repr_lists_counts_only() -> None:
    assert repr(lineage()) == "ShardMap(<6 shards, 3 open>)"


class PagingClient:
    """Hands out ListShards pages two shards at a time and records the requests."""

    def __init__(self, shards: list[ShardInfo]) -> None:
        self.pages = [shards[i : i + 2] for i in range(0, len(shards), 2)]
        self.requests: list[dict[str, Any]] = []

    def respond(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request)
        index = int(request["NextToken"]) if "NextToken" in request else 0
        response: dict[str, Any] = {"Shards": [api_shape(s) for s in self.pages[index]]}
        if index + 1 < len(self.pages):
            response["NextToken"] = str(index + 1)
        return response


class SyncPagingClient(PagingClient):
    def list_shards(self, **request: Any) -> dict[str, Any]:
        return self.respond(request)


class AsyncPagingClient(PagingClient):
    async def list_shards(self, **request: Any) -> dict[str, Any]:
        return self.respond(request)


async def test_list_shards_follows_next_token() -> None:
    shards = even_shards(5)
    client = AsyncPagingClient(shards)
    assert await list_shards(client, stream_name="s") == shards
    assert client.requests == [{"StreamName": "s"}, {"NextToken": "1"}, {"NextToken": "2"}]


def test_list_shards_sync_shares_the_paging() -> None:
    shards = even_shards(3)
    client = SyncPagingClient(shards)
    assert list_shards_sync(client, stream_arn="arn:aws:kinesis:us-east-1:1:stream/s") == shards
    assert client.requests[0] == {"StreamARN": "arn:aws:kinesis:us-east-1:1:stream/s"}
    assert client.requests[1] == {"NextToken": "1"}


async def test_list_shards_needs_exactly_one_stream_identifier() -> None:
    with pytest.raises(ConfigurationError):
        await list_shards(AsyncPagingClient([]))
    with pytest.raises(ConfigurationError):
        list_shards_sync(SyncPagingClient([]), stream_name="a", stream_arn="b")


def test_page_size_is_sent_on_every_page() -> None:
    client = SyncPagingClient(even_shards(3))
    list_shards_sync(client, stream_name="s", page_size=2)
    assert client.requests == [{"StreamName": "s", "MaxResults": 2}, {"NextToken": "1", "MaxResults": 2}]
    with pytest.raises(ConfigurationError):
        list_shards_sync(client, stream_name="s", page_size=0)


class ForeignPagingClient(SyncPagingClient):
    """Answers the second page with what botocore makes of a 200 HTML page: nothing."""

    def respond(self, request: dict[str, Any]) -> dict[str, Any]:
        if "NextToken" in request:
            self.requests.append(request)
            return {}
        return super().respond(request)


def test_an_answer_without_a_shard_list_is_a_transient_error_not_an_empty_stream() -> None:
    with pytest.raises(TransientServiceError, match="shard list"):
        list_shards_sync(ForeignPagingClient(even_shards(3)), stream_name="s")


_bounds = st.one_of(
    st.integers(min_value=0, max_value=HASH_KEY_MAX),
    st.sampled_from([-1, 0, 1, HASH_KEY_MAX - 1, HASH_KEY_MAX, HASH_KEY_MAX + 1, 2**130]),
)


@given(
    ranges=st.lists(st.tuples(_bounds, _bounds), min_size=0, max_size=6),
    keys=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=20),
)
def test_a_partition_key_routes_as_the_integer_of_its_md5_on_any_map(
    ranges: list[tuple[int, int]], keys: list[str]
) -> None:
    """A cache miss routes on the digest's bytes: the same shard, or the same refusal, as
    shard_for_hash on the 128-bit integer, whatever the map (gaps, overlaps, bounds outside
    the key space from a malformed answer)."""
    shards = [ShardInfo(f"shardId-{n:012d}", start, end) for n, (start, end) in enumerate(ranges)]
    routed = ShardMap.from_shards(shards, key_cache_size=0)
    for key in keys:
        try:
            expected: ShardInfo | None = routed.shard_for_hash(partition_key_hash(key))
        except ShardNotFoundError:
            expected = None
        if expected is None:
            with pytest.raises(ShardNotFoundError, match=str(partition_key_hash(key))):
                routed.shard_for_key(key)
        else:
            assert routed.shard_for_key(key) is expected


def test_keys_hashing_to_the_edges_of_a_range_route_to_its_shard() -> None:
    """Shards cut exactly at a key's hash: the boundaries compare as the integers do."""
    key = "device-17"
    hashed = partition_key_hash(key)
    for cut in (hashed, hashed + 1):
        below = ShardInfo("shardId-000000000000", 0, cut - 1)
        above = ShardInfo("shardId-000000000001", cut, HASH_KEY_MAX)
        owner = ShardMap.from_shards([below, above]).shard_for_key(key)
        assert owner is (above if cut == hashed else below)
