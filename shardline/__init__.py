"""Shardline's shared base: records and positions, errors, limits, shard math, the KPL
aggregation codec, retry policy, metrics protocol and AWS client factories.

It imports none of its sibling packages (producers, consumers, benchmarks).
"""

from shardline.aggregation import AggregateBuilder, UserRecord, deaggregate, deaggregate_consumed
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
from shardline.retry import RetryPolicy
from shardline.serde import Deserializer, Serializer, json_deserializer, json_serializer
from shardline.shardmath import ShardInfo, ShardMap, partition_key_hash
from shardline.validation import validate_record

__all__ = [
    "SHARD_END",
    "Ack",
    "AggregateBuilder",
    "ConsumedRecord",
    "Deserializer",
    "KafkaAck",
    "KafkaPosition",
    "KinesisPosition",
    "MetricsObserver",
    "NullObserver",
    "Position",
    "Record",
    "RetryPolicy",
    "Serializer",
    "ShardInfo",
    "ShardMap",
    "ShardlineError",
    "UserRecord",
    "deaggregate",
    "deaggregate_consumed",
    "json_deserializer",
    "json_serializer",
    "partition_key_hash",
    "validate_record",
]

__version__ = "0.1.0"
