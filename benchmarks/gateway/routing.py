"""Which shard a request touches: hash-range routing for writes, iterator tracking for reads.

The gateway learns a stream's shards from the backend's own ListShards (so routing agrees
with the emulator) and keeps a :class:`~shardline.shardmath.ShardMap` per stream, dropped
when the stream is resharded through the gateway, when the backend reports a shard the map
did not predict, or after ``refresh_seconds``.  GetRecords carries only an iterator, so the
iterators handed out by GetShardIterator and GetRecords are remembered with their shard.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from shardline.shardmath import ShardMap

__all__ = ["IteratorDirectory", "ShardDirectory", "stream_name_of"]

ListShardsCall = Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any]]]
"""Sends one ListShards request body to the backend and returns the parsed response."""


def stream_name_of(body: Mapping[str, Any]) -> str | None:
    """The stream a request names, by StreamName or by the last part of StreamARN."""
    name = body.get("StreamName")
    if isinstance(name, str):
        return name
    arn = body.get("StreamARN")
    if isinstance(arn, str) and "stream/" in arn:
        return arn.rsplit("stream/", 1)[1]
    return None


class ShardDirectory:
    """A cached shard map per stream, loaded from the backend on first use."""

    def __init__(self, clock: Callable[[], float], refresh_seconds: float = 5.0) -> None:
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._maps: dict[str, tuple[float, ShardMap]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def invalidate(self, stream: str) -> None:
        self._maps.pop(stream, None)

    async def shard_map(self, stream: str, list_shards: ListShardsCall) -> ShardMap:
        cached = self._maps.get(stream)
        if cached is not None and self._clock() - cached[0] < self._refresh_seconds:
            return cached[1]
        lock = self._locks.setdefault(stream, asyncio.Lock())
        async with lock:
            cached = self._maps.get(stream)
            if cached is not None and self._clock() - cached[0] < self._refresh_seconds:
                return cached[1]
            shapes: list[Mapping[str, Any]] = []
            request: dict[str, Any] = {"StreamName": stream}
            while True:
                response = await list_shards(request)
                shapes.extend(response.get("Shards", ()))
                token = response.get("NextToken")
                if not token:
                    break
                request = {"NextToken": token}
            shard_map = ShardMap.from_api(shapes)
            self._maps[stream] = (self._clock(), shard_map)
            return shard_map


class IteratorDirectory:
    """Remembers which (stream, shard) each handed-out iterator reads, bounded in size."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._shard_of: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def remember(self, iterator: str | None, stream: str, shard_id: str) -> None:
        if not iterator:
            return
        self._shard_of[iterator] = (stream, shard_id)
        self._shard_of.move_to_end(iterator)
        while len(self._shard_of) > self._capacity:
            self._shard_of.popitem(last=False)

    def lookup(self, iterator: str | None) -> tuple[str, str] | None:
        if not iterator:
            return None
        return self._shard_of.get(iterator)
