"""What the gateway counted, per shard: the ground truth for tests and for stream-bench.

Counters are cumulative; a reader that wants rates samples :meth:`GatewayStats.snapshot`
periodically and takes differences.  Updates happen on the gateway's event loop while
readers may sit in another thread, hence the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

__all__ = ["GatewayStats", "GatewayStatsSnapshot", "ShardStats"]


@dataclass(frozen=True, slots=True)
class ShardStats:
    """Cumulative traffic of one shard through the gateway."""

    stream: str
    shard_id: str
    accepted_records: int = 0
    accepted_bytes: int = 0
    throttled_records: int = 0
    throttled_bytes: int = 0
    get_records_calls: int = 0
    get_records_throttled: int = 0
    read_records: int = 0
    read_bytes: int = 0


@dataclass(frozen=True, slots=True)
class GatewayStatsSnapshot:
    """A consistent copy of every counter at one moment."""

    shards: Mapping[tuple[str, str], ShardStats] = field(default_factory=dict)
    injected_entry_failures: int = 0
    injected_server_errors: int = 0
    foreign_answers: int = 0
    dropped_requests: int = 0
    dropped_responses: int = 0
    requests: int = 0

    def shard(self, stream: str, shard_id: str) -> ShardStats:
        return self.shards.get((stream, shard_id), ShardStats(stream, shard_id))

    def for_stream(self, stream: str) -> dict[str, ShardStats]:
        return {shard_id: stats for (name, shard_id), stats in self.shards.items() if name == stream}

    @property
    def throttled_records(self) -> int:
        return sum(stats.throttled_records for stats in self.shards.values())

    @property
    def accepted_records(self) -> int:
        return sum(stats.accepted_records for stats in self.shards.values())


_GLOBAL_COUNTERS = (
    "injected_entry_failures",
    "injected_server_errors",
    "foreign_answers",
    "dropped_requests",
    "dropped_responses",
    "requests",
)


class GatewayStats:
    """Mutable counters behind a lock; ``snapshot()`` hands out frozen copies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shards: dict[tuple[str, str], ShardStats] = {}
        self._counters = dict.fromkeys(_GLOBAL_COUNTERS, 0)

    def add_shard(self, stream: str, shard_id: str, **increments: int) -> None:
        key = (stream, shard_id)
        with self._lock:
            current = self._shards.get(key) or ShardStats(stream, shard_id)
            self._shards[key] = replace(
                current, **{name: getattr(current, name) + amount for name, amount in increments.items()}
            )

    def add(self, counter: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[counter] += amount

    def snapshot(self) -> GatewayStatsSnapshot:
        with self._lock:
            return GatewayStatsSnapshot(shards=dict(self._shards), **self._counters)
