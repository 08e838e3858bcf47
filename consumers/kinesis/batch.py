"""What a shard reader yields: one batch of records of one shard, plus what the service said."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shardline.records import ConsumedRecord
from shardline.shardmath import ShardInfo

__all__ = ["ShardBatch", "child_shards_from_api"]


@dataclass(frozen=True, slots=True)
class ShardBatch:
    """Records of one shard, in order.

    ``end_of_shard`` is set on the last batch of a closed shard (possibly with no records);
    ``child_shards`` then lists the shards that continue its key range.  ``continuation`` is the
    sequence number from which reading continues after this batch (AFTER it for polling; the
    fan-out ContinuationSequenceNumber), ``None`` when the service gave none.
    """

    shard_id: str
    records: Sequence[ConsumedRecord] = field(repr=False)
    millis_behind_latest: int | None = None
    end_of_shard: bool = False
    child_shards: tuple[ShardInfo, ...] = ()
    continuation: str | None = None

    def __repr__(self) -> str:
        return (
            f"ShardBatch(shard_id={self.shard_id!r}, records=<{len(self.records)}>, "
            f"millis_behind_latest={self.millis_behind_latest!r}, end_of_shard={self.end_of_shard!r})"
        )


def child_shards_from_api(shapes: Sequence[Mapping[str, Any]] | None) -> tuple[ShardInfo, ...]:
    """Turn the ``ChildShards`` of a GetRecords response or fan-out event into ShardInfo values."""
    children: list[ShardInfo] = []
    for shape in shapes or ():
        parents = list(shape.get("ParentShards") or ())
        hash_range = shape["HashKeyRange"]
        children.append(
            ShardInfo(
                shard_id=shape["ShardId"],
                starting_hash_key=int(hash_range["StartingHashKey"]),
                ending_hash_key=int(hash_range["EndingHashKey"]),
                parent_shard_id=parents[0] if parents else None,
                adjacent_parent_shard_id=parents[1] if len(parents) > 1 else None,
            )
        )
    return tuple(children)
