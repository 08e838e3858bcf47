"""``stream-bench hotshards``: per-shard, per-second load and hot keys of an existing stream.

Like AWS's hot-shard advice, but from the records themselves: every open shard is read for
``duration`` seconds (from LATEST, or from TRIM_HORIZON), by GetRecords polling or through an
enhanced fan-out consumer (registered for the scan and deregistered after it); each record is
bucketed by its ApproximateArrivalTimestamp second and counted with its partition key.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape

from benchmarks.shardload import ShardLoadTracker, analyse_hot_shards
from shardline.errors import ConfigurationError
from shardline.printable import printable
from shardline.shardmath import ShardMap

__all__ = ["print_hot_shards", "scan_hot_shards"]


async def scan_hot_shards(
    client: Any,
    stream: str,
    duration: float,
    *,
    from_trim_horizon: bool = False,
    reader: str = "polling",
    until_caught_up: bool = False,
    stop: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Read every open shard for ``duration`` seconds and analyse the load per shard.

    ``reader`` is ``polling`` (GetRecords) or ``efo`` (SubscribeToShard through a fan-out
    consumer registered for this scan).  ``until_caught_up`` (polling only) ends each shard's
    read once it reaches the tip, so a scan of retained data finishes as soon as it is read;
    ``duration`` stays the upper bound.  Setting ``stop`` (Ctrl-C) ends the scan early; what
    was read so far is analysed.
    """
    from consumers.kinesis.efo import FanOutShardReader, ensure_consumer, stream_arn
    from consumers.kinesis.polling import PollingShardReader
    from consumers.kinesis.positions import LATEST, TRIM_HORIZON

    if reader not in ("polling", "efo"):
        raise ConfigurationError(f"reader must be polling or efo, got {reader!r}")
    if duration <= 0:
        raise ConfigurationError("duration must be positive")
    if until_caught_up and reader != "polling":
        raise ConfigurationError("reading until caught up is a polling read; fan-out pushes without end")
    listed = await client.list_shards(StreamName=stream)
    shard_map = ShardMap.from_api(listed["Shards"])
    shard_ids = [s.shard_id for s in shard_map.open_shards]
    tracker = ShardLoadTracker(shard_ids)
    origin: list[datetime] = []
    start = TRIM_HORIZON if from_trim_horizon else LATEST
    consumer_arn: str | None = None
    if reader == "efo":
        name = f"stream-bench-hotshards-{uuid.uuid4().hex[:8]}"
        consumer_arn = await ensure_consumer(client, await stream_arn(client, stream), name)

    def shard_reader(shard_id: str) -> Any:
        shard = shard_map.get(shard_id)
        if consumer_arn is not None:
            return FanOutShardReader(client, consumer_arn, stream, shard_id, start, shard=shard)
        return PollingShardReader(client, stream, shard_id, start, shard=shard, stop_at_tip=until_caught_up)

    async def read(shard_id: str) -> None:
        async for batch in shard_reader(shard_id):
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
    gathered = asyncio.gather(*tasks)
    stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
    await asyncio.wait({gathered} | ({stopped} if stopped else set()), timeout=duration,
                       return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
    if stopped is not None:
        stopped.cancel()
    if gathered.done() and not gathered.cancelled() and gathered.exception() is not None:
        raise gathered.exception()  # type: ignore[misc]
    gathered.cancel()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if consumer_arn is not None:
        with contextlib.suppress(Exception):
            await client.deregister_stream_consumer(ConsumerARN=consumer_arn)
    analysis = analyse_hot_shards(tracker)
    analysis["stream"] = stream
    analysis["reader"] = reader
    analysis["per_second"] = tracker.per_second()
    return analysis


def print_hot_shards(analysis: dict[str, Any], console: Console) -> None:
    """The scan's per-shard lines and hot keys; keys and ids are escaped, never read as markup,
    and a key's control characters are printed as text (the stream's writers chose them)."""
    for shard, summary in sorted(analysis["shards"].items()):
        console.print(
            f"{escape(str(shard))}: {summary['share']:.1%} of records, peak "
            f"{summary['records_per_sec_peak']} rec/s {summary['bytes_per_sec_peak'] / 1024:.1f} KiB/s, "
            f"{summary['seconds_over_limit']} s over a limit"
        )
    for hot in analysis["hot_shards"]:
        keys = ", ".join(f"{escape(printable(str(k['key'])))} ({k['count']})" for k in hot["top_keys"])
        console.print(
            f"[bold]hot {escape(str(hot['shard_id']))}[/bold]: {keys}\n  {escape(str(hot['recommendation']))}"
        )
    if not analysis["hot_shards"]:
        console.print("no hot shard")
