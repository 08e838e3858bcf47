"""Kinesis readers: polling and enhanced fan-out shard readers, shard lineage, KinesisSource.

The per-shard readers (:class:`PollingShardReader`, :class:`FanOutShardReader`) are async
iterators of :class:`ShardBatch` with optional bounds (``stop_at``, ``stop_at_tip``), which is
what replay jobs build on; :class:`KinesisSource` runs them for every readable shard of a stream
behind the :class:`consumers.source.Source` contract.
"""

from consumers.kinesis.batch import ShardBatch
from consumers.kinesis.budget import CallBudget
from consumers.kinesis.config import ReaderConfig
from consumers.kinesis.deaggregate import records_from_api
from consumers.kinesis.efo import FanOutShardReader, ensure_consumer, stream_arn
from consumers.kinesis.lineage import ShardAssignment, plan_reads, resume_position
from consumers.kinesis.polling import (
    PollingShardReader,
    StopCondition,
    stop_after_sequence,
    stop_at_timestamp,
)
from consumers.kinesis.positions import (
    AFTER_SEQUENCE_NUMBER,
    AT_SEQUENCE_NUMBER,
    AT_TIMESTAMP,
    LATEST,
    TRIM_HORIZON,
    StartKind,
    StartPosition,
)
from consumers.kinesis.source import KinesisSource

__all__ = [
    "AFTER_SEQUENCE_NUMBER",
    "AT_SEQUENCE_NUMBER",
    "AT_TIMESTAMP",
    "LATEST",
    "TRIM_HORIZON",
    "CallBudget",
    "FanOutShardReader",
    "KinesisSource",
    "PollingShardReader",
    "ReaderConfig",
    "ShardAssignment",
    "ShardBatch",
    "StartKind",
    "StartPosition",
    "StopCondition",
    "ensure_consumer",
    "plan_reads",
    "records_from_api",
    "resume_position",
    "stop_after_sequence",
    "stop_at_timestamp",
    "stream_arn",
]
