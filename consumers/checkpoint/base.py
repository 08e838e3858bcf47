"""The checkpoint store contract: shard leases with a fencing token.

The model is the KCL lease table's.  One :class:`Lease` per shard records who processes
the shard (``owner``), how far every record is known to be processed (``checkpoint``) and a
``counter`` (KCL's ``leaseCounter``) that every take and renew bumps.  A checkpoint is
written only when both the owner and the counter still match what the writer last saw, so
a worker that stalled (GC pause, SIGSTOP) and lost its lease to another worker can never
move the shard's checkpoint backwards or forwards behind the new owner's back: its write is
fenced out with :class:`shardline.errors.LeaseLostError`.

Stores implement the :class:`CheckpointStore` protocol; one contract test suite runs
against every implementation (memory, SQLite, DynamoDB).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from shardline.errors import ValidationError
from shardline.records import SHARD_END
from shardline.validation import is_decimal

__all__ = [
    "DEFAULT_NAMESPACE",
    "INITIAL_POSITIONS",
    "MAX_CHECKPOINT_DIGITS",
    "MAX_SHARD_ID_CHARS",
    "SHARD_END",
    "CheckpointStore",
    "Lease",
    "unchanged_since",
    "validate_checkpoint_value",
    "validate_initial_position",
    "validate_namespace",
    "validate_shard_id",
]

DEFAULT_NAMESPACE = "default"
"""Namespace of a live consumer's checkpoints; replay jobs pass their own so they never collide."""

INITIAL_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
"""The KCL's initial-position sentinels: what a lease's ``checkpoint`` holds before any progress."""

_NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,255}$")
MAX_SHARD_ID_CHARS = 256
"""The longest partition (shard) id a checkpoint store keeps."""
MAX_CHECKPOINT_DIGITS = 128
"""The most digits a checkpoint has: a Kinesis sequence number's (a Kafka offset has 19).
A longer one is no position any reader can start from."""


@dataclass(frozen=True, slots=True)
class Lease:
    """One shard's row in the lease table, as last read or written by this worker.

    ``counter`` is the fencing token (KCL ``leaseCounter``): a write that carries a stale
    counter is rejected.  ``checkpoint`` is a sequence number, :data:`SHARD_END` once the
    closed shard was fully processed, or ``None`` when nothing was processed yet.
    ``initial_position`` is, for a lease without progress, the KCL sentinel the row holds
    (``TRIM_HORIZON``, ``LATEST`` or ``AT_TIMESTAMP``): where the shard starts, whoever
    created the lease.  Stores that do not share their rows with the KCL leave it ``None``
    and the consumer's own start position applies.
    """

    shard_id: str
    owner: str | None
    counter: int
    checkpoint: str | None
    sub_sequence_number: int = 0
    parent_shard_ids: tuple[str, ...] = ()
    initial_position: str | None = None

    @property
    def is_shard_end(self) -> bool:
        """Whether every record of the (closed) shard was processed."""
        return self.checkpoint == SHARD_END


@runtime_checkable
class CheckpointStore(Protocol):
    """Leases and checkpoints of one consumer application (one namespace).

    Every mutating method except :meth:`create_if_absent` is conditional: it raises
    :class:`shardline.errors.LeaseLostError` when another worker changed the lease since
    the caller's copy was read, and returns the new copy on success.
    """

    async def create_if_absent(
        self, shard_id: str, parent_shard_ids: Sequence[str] = (), *, initial_position: str = "TRIM_HORIZON"
    ) -> None:
        """Create the shard's lease (no owner, no progress) unless it exists already.

        ``initial_position`` (one of :data:`INITIAL_POSITIONS`) is where the shard starts;
        stores that share their rows with the KCL record it as the KCL does.
        """
        ...

    async def get(self, shard_id: str) -> Lease | None:
        """The shard's lease, or ``None`` when it was never created."""
        ...

    async def list(self) -> list[Lease]:
        """Every lease of the namespace, sorted by shard id."""
        ...

    async def acquire(self, shard_id: str, owner: str, *, expected: Lease | None = None) -> Lease:
        """Take the lease: set ``owner`` and bump the counter.

        ``expected`` is the copy of the lease the caller judged free or abandoned (from a
        listing): the take then happens only while the lease still has exactly that owner
        and counter, so a holder that renewed since the listing keeps its lease.  Without
        it the take is conditional only on the counter this call reads itself.

        Raises :class:`LeaseLostError` when the lease changed since ``expected`` or a
        concurrent taker won the conditional write, and
        :class:`shardline.errors.CheckpointError` when the lease does not exist.
        """
        ...

    async def renew(self, lease: Lease) -> Lease:
        """Bump the counter iff owner and counter still match ``lease``."""
        ...

    async def checkpoint(self, lease: Lease, sequence_number: str, sub_sequence_number: int = 0) -> Lease:
        """Record progress iff owner and counter still match ``lease`` (fencing)."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give the lease up (owner cleared) iff it is still ours; a no-op otherwise."""
        ...

    async def close(self) -> None:
        """Release clients and connections."""
        ...


def unchanged_since(current: Lease, expected: Lease | None) -> bool:
    """Whether ``current`` still has the owner and counter of ``expected`` (always, without one)."""
    return expected is None or (current.owner, current.counter) == (expected.owner, expected.counter)


def validate_namespace(namespace: str) -> str:
    """Reject namespaces that cannot be a table-name suffix or key prefix."""
    if not isinstance(namespace, str) or not _NAMESPACE_PATTERN.match(namespace):
        raise ValidationError("checkpoint namespace must be 1-255 characters of [A-Za-z0-9_.-]")
    return namespace


def validate_shard_id(shard_id: str) -> str:
    """Reject empty or absurd shard ids before any I/O."""
    if not isinstance(shard_id, str) or not shard_id or len(shard_id) > MAX_SHARD_ID_CHARS:
        raise ValidationError("shard id must be a non-empty string of at most 256 characters")
    return shard_id


def validate_initial_position(initial_position: str) -> str:
    """Reject anything but the KCL's three initial-position sentinels."""
    if initial_position not in INITIAL_POSITIONS:
        raise ValidationError("initial position must be TRIM_HORIZON, LATEST or AT_TIMESTAMP")
    return initial_position


def validate_checkpoint_value(sequence_number: str, sub_sequence_number: int) -> None:
    """A checkpoint is a decimal sequence number of at most :data:`MAX_CHECKPOINT_DIGITS`
    digits or :data:`SHARD_END`, sub-sequence >= 0.

    The stores read their rows through this check too: a lease whose checkpoint had more digits
    passed it, and the shard's start position refused it, ending the whole consumer.
    """
    if not isinstance(sequence_number, str) or not (
        sequence_number == SHARD_END
        or (is_decimal(sequence_number) and len(sequence_number) <= MAX_CHECKPOINT_DIGITS)
    ):
        raise ValidationError("checkpoint must be a decimal sequence number of up to 128 digits or SHARD_END")
    if (
        not isinstance(sub_sequence_number, int)
        or isinstance(sub_sequence_number, bool)
        or (sub_sequence_number < 0)
    ):
        raise ValidationError("sub-sequence number must be a non-negative integer")
