"""A ListShards answer whose shard entries lack what every Kinesis shard has is a transient
error, not a KeyError, TypeError or ValueError out of the parser (which ended a producer's
periodic refresh task, and the producer with it)."""

from __future__ import annotations

from typing import Any

import pytest

from shardline.errors import TransientServiceError
from shardline.shardmath import list_shards

TOP = str(2**128 - 1)
RANGE = {"StartingHashKey": "0", "EndingHashKey": TOP}


class OnePage:
    def __init__(self, shards: list[Any]) -> None:
        self.shards = shards

    async def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        return {"Shards": self.shards}


MALFORMED = {
    "not an object": "shardId-0",
    "no hash key range": {"ShardId": "a"},
    "hash key range null": {"ShardId": "a", "HashKeyRange": None},
    "no shard id": {"HashKeyRange": RANGE},
    "numeric shard id": {"ShardId": 5, "HashKeyRange": RANGE},
    "hash key not decimal": {"ShardId": "a", "HashKeyRange": {"StartingHashKey": "x", "EndingHashKey": "1"}},
    "hash key of 5,000 digits": {
        "ShardId": "a",
        "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "9" * 5000},
    },
    "hash key past the key space": {
        "ShardId": "a",
        "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(2**128)},
    },
    "range reversed": {"ShardId": "a", "HashKeyRange": {"StartingHashKey": TOP, "EndingHashKey": "0"}},
    "sequence range not an object": {"ShardId": "a", "HashKeyRange": RANGE, "SequenceNumberRange": "1"},
    "ending sequence number not text": {
        "ShardId": "a",
        "HashKeyRange": RANGE,
        "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": 7},
    },
    "parent id not text": {"ShardId": "a", "HashKeyRange": RANGE, "ParentShardId": ["p"]},
}


@pytest.mark.parametrize("shape", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_a_malformed_shard_entry_is_a_transient_error(shape: Any) -> None:
    good = {"ShardId": "b", "HashKeyRange": RANGE, "SequenceNumberRange": {"StartingSequenceNumber": "1"}}
    with pytest.raises(TransientServiceError, match="ListShards"):
        await list_shards(OnePage([good, shape]), stream_name="s")


async def test_well_formed_entries_still_parse() -> None:
    shapes = [
        {"ShardId": "a", "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "9"}},
        {
            "ShardId": "b",
            "ParentShardId": "a",
            "HashKeyRange": {"StartingHashKey": "10", "EndingHashKey": TOP},
            "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "2"},
        },
    ]
    shards = await list_shards(OnePage(shapes), stream_name="s")
    assert [(s.shard_id, s.starting_hash_key, s.ending_hash_key) for s in shards] == [
        ("a", 0, 9),
        ("b", 10, 2**128 - 1),
    ]
    assert shards[1].parent_shard_id == "a" and not shards[1].is_open
