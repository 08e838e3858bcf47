"""The limit-enforcing Kinesis gateway that stream-bench's embedded target runs in front of kinesis-mock.

It belongs to the benchmark, not to the runtime: producers, consumers and the ``shardline``
commands never import it.  The tests use it too, to make the emulator throttle and fail the
way AWS does (see :mod:`benchmarks.gateway.server`).
"""

from __future__ import annotations

from benchmarks.gateway.server import (
    WRITE_OPERATIONS,
    Clock,
    FaultPlan,
    GatewayStatsSnapshot,
    KinesisGateway,
    ManualClock,
    ShardLimits,
    ShardStats,
    ThreadedKinesisGateway,
)

__all__ = [
    "WRITE_OPERATIONS",
    "Clock",
    "FaultPlan",
    "GatewayStatsSnapshot",
    "KinesisGateway",
    "ManualClock",
    "ShardLimits",
    "ShardStats",
    "ThreadedKinesisGateway",
]
