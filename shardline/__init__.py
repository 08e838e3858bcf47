"""Shardline's shared base: records and positions, errors, limits, shard math, the KPL
aggregation codec, retry policy, metrics protocol and AWS client factories.

It imports none of its sibling packages (producers, consumers, benchmarks).
"""

from shardline.errors import ShardlineError
from shardline.metrics import MetricsObserver, NullObserver
from shardline.records import (
    SHARD_END,
    Ack,
    ConsumedRecord,
    KafkaAck,
    KafkaPosition,
    KinesisPosition,
    Position,
    Record,
)

__all__ = [
    "SHARD_END",
    "Ack",
    "ConsumedRecord",
    "KafkaAck",
    "KafkaPosition",
    "KinesisPosition",
    "MetricsObserver",
    "NullObserver",
    "Position",
    "Record",
    "ShardlineError",
]

__version__ = "0.1.0"
