"""Checkpoint stores: shard leases with a fencing token (the KCL lease-table model).

``open_checkpoint_store(uri)`` builds one from ``memory://``, ``sqlite:///PATH`` or
``dynamodb://TABLE``; the backends are importable on their own too.
"""

from consumers.checkpoint.base import DEFAULT_NAMESPACE, SHARD_END, CheckpointStore, Lease
from consumers.checkpoint.memory import MemoryCheckpointStore

__all__ = [
    "DEFAULT_NAMESPACE",
    "SHARD_END",
    "CheckpointStore",
    "Lease",
    "MemoryCheckpointStore",
]
