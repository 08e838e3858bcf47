"""An in-memory Kinesis stream of several shards that grows and splits while it is read.

Sequence numbers are unique across the stream and grow with every append, as in Kinesis.
A split closes its parent and opens two children over the halves of its hash range; the
parent's last GetRecords answer carries no next iterator and names the children.  Each worker
gets its own :class:`StreamClient` over the one stream, so a paused worker's calls wait
(see :mod:`tests.unit.consumers.kinesis.lease_world`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Stream", "StreamClient", "StreamShard"]

HASH_KEY_MAX = 2**128 - 1
ARRIVED = datetime(2024, 1, 1, tzinfo=UTC)
PAGE = 3
"""Records per GetRecords answer: several batches per shard."""


@dataclass
class StreamShard:
    shard_id: str
    low: int
    high: int
    parents: tuple[str, ...] = ()
    sequence_numbers: list[int] = field(default_factory=list)
    children: tuple[str, ...] = ()

    @property
    def closed(self) -> bool:
        return bool(self.children)

    def listing(self) -> dict[str, Any]:
        shape: dict[str, Any] = {
            "ShardId": self.shard_id,
            "HashKeyRange": {"StartingHashKey": str(self.low), "EndingHashKey": str(self.high)},
            "SequenceNumberRange": {"StartingSequenceNumber": "1"},
        }
        if self.closed:
            shape["SequenceNumberRange"]["EndingSequenceNumber"] = str(2**100)
        if self.parents:
            shape["ParentShardId"] = self.parents[0]
        return shape


class Stream:
    """The shards, their records and the next sequence number."""

    def __init__(self, shard_count: int) -> None:
        width = (HASH_KEY_MAX + 1) // shard_count
        self.shards: dict[str, StreamShard] = {}
        for index in range(shard_count):
            high = HASH_KEY_MAX if index == shard_count - 1 else (index + 1) * width - 1
            self._add(StreamShard(f"shard-{index}", index * width, high))
        self._next_sequence = 1000

    def _add(self, shard: StreamShard) -> None:
        self.shards[shard.shard_id] = shard

    def open_shards(self) -> list[StreamShard]:
        return [shard for shard in self.shards.values() if not shard.closed]

    def append(self, shard_id: str, count: int) -> None:
        for _ in range(count):
            self.shards[shard_id].sequence_numbers.append(self._next_sequence)
            self._next_sequence += 1

    def split(self, shard_id: str) -> None:
        parent = self.shards[shard_id]
        middle = (parent.low + parent.high) // 2
        left = StreamShard(f"{shard_id}-a", parent.low, middle, (shard_id,))
        right = StreamShard(f"{shard_id}-b", middle + 1, parent.high, (shard_id,))
        parent.children = (left.shard_id, right.shard_id)
        self._add(left)
        self._add(right)

    def records(self) -> set[tuple[str, int]]:
        """Every record appended so far, as (shard, sequence number)."""
        return {
            (shard.shard_id, number) for shard in self.shards.values() for number in shard.sequence_numbers
        }


class StreamClient:
    """The Kinesis calls KinesisSource makes, answered from the stream; ``gate`` runs before
    and after each call (a paused worker neither sends nor hears)."""

    def __init__(self, stream: Stream, gate: Callable[[], Awaitable[None]]) -> None:
        self.stream = stream
        self.gate = gate

    async def list_shards(self, **_: Any) -> dict[str, Any]:
        await self.gate()
        answer = {"Shards": [shard.listing() for shard in self.stream.shards.values()]}
        await self.gate()
        return answer

    async def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        await self.gate()
        shard = self.stream.shards[kwargs["ShardId"]]
        kind = kwargs["ShardIteratorType"]
        index = 0
        if kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            wanted = int(kwargs["StartingSequenceNumber"])
            if kind == "AFTER_SEQUENCE_NUMBER":
                wanted += 1
            index = sum(1 for number in shard.sequence_numbers if number < wanted)
        elif kind != "TRIM_HORIZON":
            raise AssertionError(f"the property starts every shard at TRIM_HORIZON, not {kind}")
        await self.gate()
        return {"ShardIterator": f"{shard.shard_id}|{index}"}

    async def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        await self.gate()
        shard_id, _, start = ShardIterator.partition("|")
        shard = self.stream.shards[shard_id]
        index = int(start)
        chunk = shard.sequence_numbers[index : index + min(Limit, PAGE)]
        end = index + len(chunk)
        answer: dict[str, Any] = {
            "Records": [
                {
                    "SequenceNumber": str(number),
                    "PartitionKey": "k",
                    "Data": b"x",
                    "ApproximateArrivalTimestamp": ARRIVED,
                }
                for number in chunk
            ],
            "MillisBehindLatest": 0 if end == len(shard.sequence_numbers) else 1000,
        }
        if shard.closed and end == len(shard.sequence_numbers):
            answer["ChildShards"] = [
                {
                    "ShardId": child,
                    "ParentShards": [shard_id],
                    "HashKeyRange": {
                        "StartingHashKey": str(self.stream.shards[child].low),
                        "EndingHashKey": str(self.stream.shards[child].high),
                    },
                }
                for child in shard.children
            ]
        else:
            answer["NextShardIterator"] = f"{shard_id}|{end}"
        await self.gate()
        return answer
