"""Checkpoint stores: shard leases with a fencing token (the KCL lease-table model).

``open_checkpoint_store(uri)`` builds one from ``memory://``, ``sqlite:///PATH`` or
``dynamodb://TABLE``; the backends are importable on their own too.
"""

from consumers.checkpoint.base import DEFAULT_NAMESPACE, SHARD_END, CheckpointStore, Lease
from consumers.checkpoint.dynamodb import DynamoDBCheckpointStore
from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.checkpoint.sqlite import SQLiteCheckpointStore
from consumers.checkpoint.uri import open_checkpoint_store

__all__ = [
    "DEFAULT_NAMESPACE",
    "SHARD_END",
    "CheckpointStore",
    "DynamoDBCheckpointStore",
    "Lease",
    "MemoryCheckpointStore",
    "SQLiteCheckpointStore",
    "open_checkpoint_store",
]
