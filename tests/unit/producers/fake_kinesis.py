"""An in-memory Kinesis client double for producer unit tests (PutRecords, ListShards)."""

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

    async def describe_stream_summary(self, **kwargs: Any) -> dict[str, Any]:
        summary: dict[str, Any] = {"StreamName": kwargs.get("StreamName"), "OpenShardCount": len(self.shards)}
        if self.max_record_kib:
            summary["MaxRecordSizeInKiB"] = self.max_record_kib
        return {"StreamDescriptionSummary": summary}

    async def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        return {"Shards": list(self.shards)}

    def _route(self, entry: dict[str, Any]) -> str:
        ehk = entry.get("ExplicitHashKey")
        hash_key = int(ehk) if ehk is not None else partition_key_hash(entry["PartitionKey"])
        for shard in self.shards:
            rng = shard["HashKeyRange"]
            in_range = int(rng["StartingHashKey"]) <= hash_key <= int(rng["EndingHashKey"])
            if in_range and "EndingSequenceNumber" not in shard["SequenceNumberRange"]:
                return str(shard["ShardId"])
        raise AssertionError("no open shard")

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


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutRecords",
    )
