"""An in-memory Kinesis client double for producer unit tests (PutRecords, ListShards).

Resharding is simulated as Kinesis does it: a split or a merge closes its parents (they stay
listed, with an ``EndingSequenceNumber``) and adds children naming them (``ParentShardId``,
and ``AdjacentParentShardId`` for a merge's second parent); entries are only ever written to
the open shard owning their hash key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from shardline.limits import HASH_KEY_MAX
from shardline.shardmath import partition_key_hash

Fault = Callable[[int, dict[str, Any]], str | None]
"""Given (call number, request entry), an ErrorCode to fail that entry with, or None."""


def even_shards(count: int) -> list[dict[str, Any]]:
    width = (HASH_KEY_MAX + 1) // count
    shards = []
    for i in range(count):
        end = (i + 1) * width - 1 if i < count - 1 else HASH_KEY_MAX
        shards.append(
            {
                "ShardId": f"shardId-{i:012d}",
                "HashKeyRange": {"StartingHashKey": str(i * width), "EndingHashKey": str(end)},
                "SequenceNumberRange": {"StartingSequenceNumber": "1"},
            }
        )
    return shards


class FakeKinesis:
    """Routes entries by hash key like Kinesis, records every call, injects per-entry faults."""

    def __init__(self, shards: int = 4, fault: Fault | None = None) -> None:
        self.shards = even_shards(shards)
        self.fault = fault
        self.calls: list[list[dict[str, Any]]] = []
        self.written: list[tuple[str, dict[str, Any]]] = []
        self.call_errors: list[Exception] = []
        """Raised by the next PutRecords calls, one per call, before any entry is written."""
        self.gate: asyncio.Event | None = None
        self.max_record_kib: int | None = None
        self._seq = 0

    def split_the_only_shard(self) -> int:
        """Close shard 0 and add two children splitting the hash range at its middle; return it."""
        half = 2**127
        self.shards[0]["SequenceNumberRange"]["EndingSequenceNumber"] = "99"
        self.shards += [
            {
                "ShardId": "left",
                "ParentShardId": self.shards[0]["ShardId"],
                "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(half - 1)},
                "SequenceNumberRange": {"StartingSequenceNumber": "100"},
            },
            {
                "ShardId": "right",
                "ParentShardId": self.shards[0]["ShardId"],
                "HashKeyRange": {"StartingHashKey": str(half), "EndingHashKey": str(2**128 - 1)},
                "SequenceNumberRange": {"StartingSequenceNumber": "100"},
            },
        ]
        return half

    def open_shards(self) -> list[dict[str, Any]]:
        """The shards accepting writes, by starting hash key (they tile the hash key space)."""
        shards = [s for s in self.shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
        return sorted(shards, key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))

    def split(self, shard_id: str, new_starting_hash_key: int | None = None) -> tuple[str, str]:
        """SplitShard: close open ``shard_id``; its children own its range below and from
        ``new_starting_hash_key`` (default: the middle).  Returns the children's ids, low first."""
        parent = self._open_shard(shard_id)
        low, high = hash_range(parent)
        at = (low + high + 1) // 2 if new_starting_hash_key is None else new_starting_hash_key
        if not low < at <= high:
            raise ValueError(f"new starting hash key {at} outside ({low}, {high}] of {shard_id}")
        self._close(parent)
        lower = self._add_child(low, at - 1, shard_id)
        upper = self._add_child(at, high, shard_id)
        return str(lower["ShardId"]), str(upper["ShardId"])

    def merge(self, shard_id: str, adjacent_shard_id: str) -> str:
        """MergeShards: close two open shards whose ranges touch; one child owns both ranges.

        The child names ``shard_id`` as ``ParentShardId`` and ``adjacent_shard_id`` as
        ``AdjacentParentShardId`` (as MergeShards' ShardToMerge and AdjacentShardToMerge),
        whichever of the two ranges is the lower.  Returns the child's id.
        """
        first, second = self._open_shard(shard_id), self._open_shard(adjacent_shard_id)
        (low_a, high_a), (low_b, high_b) = hash_range(first), hash_range(second)
        if high_a + 1 != low_b and high_b + 1 != low_a:
            raise ValueError(f"shards {shard_id} and {adjacent_shard_id} are not adjacent")
        self._close(first)
        self._close(second)
        child = self._add_child(min(low_a, low_b), max(high_a, high_b), shard_id, adjacent_shard_id)
        return str(child["ShardId"])

    def _open_shard(self, shard_id: str) -> dict[str, Any]:
        for shard in self.shards:
            if shard["ShardId"] == shard_id:
                if "EndingSequenceNumber" in shard["SequenceNumberRange"]:
                    raise ValueError(f"shard {shard_id} is closed")
                return shard
        raise ValueError(f"no shard {shard_id}")

    def _close(self, shard: dict[str, Any]) -> None:
        # nothing is written to it from now on: it ends at the last sequence number handed out
        sequence_range = shard["SequenceNumberRange"]
        ending = max(self._seq, int(sequence_range["StartingSequenceNumber"]))
        sequence_range["EndingSequenceNumber"] = str(ending)

    def _add_child(
        self, low: int, high: int, parent_id: str, adjacent_parent_id: str | None = None
    ) -> dict[str, Any]:
        # new shards are numbered on from every shard the stream ever had, as in Kinesis
        child: dict[str, Any] = {"ShardId": f"shardId-{len(self.shards):012d}", "ParentShardId": parent_id}
        if adjacent_parent_id is not None:
            child["AdjacentParentShardId"] = adjacent_parent_id
        child["HashKeyRange"] = {"StartingHashKey": str(low), "EndingHashKey": str(high)}
        child["SequenceNumberRange"] = {"StartingSequenceNumber": str(self._seq + 1)}
        self.shards.append(child)
        return child

    async def describe_stream_summary(self, **kwargs: Any) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "StreamName": kwargs.get("StreamName"),
            "OpenShardCount": len(self.open_shards()),
        }
        if self.max_record_kib:
            summary["MaxRecordSizeInKiB"] = self.max_record_kib
        return {"StreamDescriptionSummary": summary}

    async def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        return {"Shards": list(self.shards)}

    def _route(self, entry: dict[str, Any]) -> str:
        """The one open shard owning the entry's hash key (closed shards take no writes)."""
        ehk = entry.get("ExplicitHashKey")
        hash_key = int(ehk) if ehk is not None else partition_key_hash(entry["PartitionKey"])
        owners = []
        for shard in self.shards:
            if "EndingSequenceNumber" not in shard["SequenceNumberRange"]:
                low, high = hash_range(shard)
                if low <= hash_key <= high:
                    owners.append(str(shard["ShardId"]))
        if len(owners) != 1:  # the open shards must tile the key space
            raise AssertionError(f"open shards {owners} own hash key {hash_key}")
        return owners[0]

    async def put_records(self, **kwargs: Any) -> dict[str, Any]:
        entries = kwargs["Records"]
        call = len(self.calls)
        self.calls.append(entries)
        if self.gate is not None:
            await self.gate.wait()
        if self.call_errors:
            raise self.call_errors.pop(0)
        results: list[dict[str, Any]] = []
        failed = 0
        for entry in entries:
            code = self.fault(call, entry) if self.fault else None
            if code is not None:
                failed += 1
                results.append({"ErrorCode": code, "ErrorMessage": "injected"})
                continue
            self._seq += 1
            shard_id = self._route(entry)
            self.written.append((shard_id, entry))
            results.append({"ShardId": shard_id, "SequenceNumber": str(self._seq)})
        return {"FailedRecordCount": failed, "Records": results}


def hash_range(shard: dict[str, Any]) -> tuple[int, int]:
    """A ListShards shard's (starting, ending) hash keys, inclusive."""
    rng = shard["HashKeyRange"]
    return int(rng["StartingHashKey"]), int(rng["EndingHashKey"])


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutRecords",
    )
