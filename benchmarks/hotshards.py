"""``stream-bench hotshards``: per-shard, per-second load and hot keys of an existing stream.

Like AWS's hot-shard advice, but from the records themselves: every open shard is polled
for ``duration`` seconds (from LATEST, or from ``start``), each record is bucketed by its
ApproximateArrivalTimestamp second and counted with its partition key.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any

from benchmarks.shardload import ShardLoadTracker, analyse_hot_shards
from shardline.shardmath import ShardMap

__all__ = ["scan_hot_shards"]


async def scan_hot_shards(
    client: Any, stream: str, duration: float, *, from_trim_horizon: bool = False
) -> dict[str, Any]:
    """Read every open shard for ``duration`` seconds and analyse the load per shard."""
    from consumers.kinesis.polling import PollingShardReader
    from consumers.kinesis.positions import LATEST, TRIM_HORIZON

    listed = await client.list_shards(StreamName=stream)
    shard_map = ShardMap.from_api(listed["Shards"])
    shard_ids = [s.shard_id for s in shard_map.open_shards]
    tracker = ShardLoadTracker(shard_ids)
    origin: list[datetime] = []

    async def read(shard_id: str) -> None:
        reader = PollingShardReader(
            client,
            stream,
            shard_id,
            TRIM_HORIZON if from_trim_horizon else LATEST,
            shard=shard_map.get(shard_id),
        )
        async for batch in reader:
            for record in batch.records:
                arrival = record.arrival_time
                if arrival is None:
                    continue
                if not origin:
                    origin.append(arrival)
                second = max(int((arrival - origin[0]).total_seconds()), 0)
                tracker.add(
                    shard_id, second, record.partition_key, len(record.data) + len(record.partition_key)
                )

    tasks = [asyncio.create_task(read(shard_id)) for shard_id in shard_ids]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=duration)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    analysis = analyse_hot_shards(tracker)
    analysis["stream"] = stream
    analysis["per_second"] = tracker.per_second()
    return analysis
