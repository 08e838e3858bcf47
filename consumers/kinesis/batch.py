"""What a shard reader yields: one batch of records of one shard, plus what the service said."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shardline.limits import HASH_KEY_MAX
from shardline.records import ConsumedRecord
from shardline.shardmath import ShardInfo
from shardline.validation import is_decimal

__all__ = ["ShardBatch", "child_shards_from_api", "child_shards_of", "is_lag"]

_HASH_KEY_DIGITS = len(str(HASH_KEY_MAX))
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


def is_lag(value: object) -> bool:
    """Whether ``MillisBehindLatest`` (of a GetRecords answer or a fan-out event) is one: absent,
    or an int within the API's Long.  A number past a Long is no lag, and ``float()`` of a
    longer one raised a bare ``OverflowError`` out of the reader."""
    return value is None or (type(value) is int and _LONG_MIN <= value <= _LONG_MAX)


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


def child_shards_of(shapes: object) -> tuple[ShardInfo, ...] | None:
    """The ``ChildShards`` of a GetRecords response or fan-out event, or ``None`` when they
    are not what Kinesis sends: a list of shards, each with a str id, parents that are str,
    and a hash-key range of decimal strings within the key space (as a listed shard has).

    botocore's parse keeps a child without a member, or with one of another type; built into
    a :class:`ShardInfo` such a child raised KeyError, ValueError or AttributeError out of the
    reader, or gave the source a shard over no key range to plan.  ``None`` (absent) is none.
    """
    if shapes is None:
        return ()
    if type(shapes) is not list:
        return None
    for shape in shapes:
        if not _is_child_shard(shape):
            return None
    return child_shards_from_api(shapes)


def _is_child_shard(shape: object) -> bool:
    if not isinstance(shape, Mapping) or type(shape.get("ShardId")) is not str:
        return False
    parents = shape.get("ParentShards")
    if parents is not None and (type(parents) is not list or any(type(p) is not str for p in parents)):
        return False
    hash_range = shape.get("HashKeyRange")
    if not isinstance(hash_range, Mapping):
        return False
    start, end = hash_range.get("StartingHashKey"), hash_range.get("EndingHashKey")
    return (
        is_decimal(start)
        and is_decimal(end)
        and len(start) <= _HASH_KEY_DIGITS
        and len(end) <= _HASH_KEY_DIGITS
        and int(start) <= int(end) <= HASH_KEY_MAX
    )
