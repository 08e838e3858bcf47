"""An in-process checkpoint store for tests and throw-away runs.

It follows the same conditional rules as the durable stores (owner and counter must
match), so code tested against it behaves the same against SQLite or DynamoDB.  Nothing
survives the process.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Sequence
from dataclasses import replace

from consumers.checkpoint.base import (
    DEFAULT_NAMESPACE,
    Lease,
    unchanged_since,
    validate_checkpoint_value,
    validate_initial_position,
    validate_namespace,
    validate_shard_id,
)
from shardline.errors import CheckpointError, ClosedError, LeaseLostError

__all__ = ["MemoryCheckpointStore"]


class MemoryCheckpointStore:
    """Leases in a dict, guarded by a lock so concurrent tasks see atomic compare-and-set."""

    def __init__(self, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.namespace = validate_namespace(namespace)
        self._leases: dict[str, Lease] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryCheckpointStore(namespace={self.namespace!r}, leases={len(self._leases)})"

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("checkpoint store is closed")

    async def create_if_absent(
        self, shard_id: str, parent_shard_ids: Sequence[str] = (), *, initial_position: str = "TRIM_HORIZON"
    ) -> None:
        # the lease holds no sentinel here: the consumer's own start position applies
        validate_initial_position(initial_position)
        validate_shard_id(shard_id)
        parents = tuple(sorted({validate_shard_id(parent) for parent in parent_shard_ids}))
        self._check_open()
        async with self._lock:
            if shard_id not in self._leases:
                self._leases[shard_id] = Lease(shard_id, None, 0, None, 0, parents)

    async def get(self, shard_id: str) -> Lease | None:
        validate_shard_id(shard_id)
        self._check_open()
        return self._leases.get(shard_id)

    async def list(self) -> builtins.list[Lease]:
        self._check_open()
        return [self._leases[key] for key in sorted(self._leases)]

    async def acquire(self, shard_id: str, owner: str, *, expected: Lease | None = None) -> Lease:
        validate_shard_id(shard_id)
        if not owner:
            raise CheckpointError("lease owner must be a non-empty string")
        self._check_open()
        async with self._lock:
            current = self._leases.get(shard_id)
            if current is None:
                raise CheckpointError(f"no lease for shard {shard_id!r}; create it first")
            if not unchanged_since(current, expected):
                raise LeaseLostError(f"the lease on shard {shard_id!r} changed since it was listed")
            taken = replace(current, owner=owner, counter=current.counter + 1)
            self._leases[shard_id] = taken
            return taken

    async def renew(self, lease: Lease) -> Lease:
        self._check_open()
        async with self._lock:
            self._fence(lease)
            renewed = replace(self._leases[lease.shard_id], counter=lease.counter + 1)
            self._leases[lease.shard_id] = renewed
            return renewed

    async def checkpoint(self, lease: Lease, sequence_number: str, sub_sequence_number: int = 0) -> Lease:
        validate_checkpoint_value(sequence_number, sub_sequence_number)
        self._check_open()
        async with self._lock:
            self._fence(lease)
            updated = replace(
                self._leases[lease.shard_id],
                checkpoint=sequence_number,
                sub_sequence_number=sub_sequence_number,
            )
            self._leases[lease.shard_id] = updated
            return updated

    async def release(self, lease: Lease) -> None:
        self._check_open()
        async with self._lock:
            try:
                self._fence(lease)
            except LeaseLostError:
                return
            self._leases[lease.shard_id] = replace(self._leases[lease.shard_id], owner=None)

    async def close(self) -> None:
        self._closed = True

    def _fence(self, lease: Lease) -> None:
        current = self._leases.get(lease.shard_id)
        if (
            lease.owner is None
            or current is None
            or current.owner != lease.owner
            or current.counter != lease.counter
        ):
            raise LeaseLostError(f"lease on shard {lease.shard_id!r} is held by another worker now")
