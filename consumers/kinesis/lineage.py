"""Which shards may be read now, and from where.

A child shard (from a split, a merge or on-demand scaling) is read only once *every* parent
reached SHARD_END *and* the checkpoint store says so: reading it earlier would deliver a key's
newer records before its older ones, and trusting only the reader's memory would let a crash
between the parent's last batch and its SHARD_END checkpoint reorder them on restart.

The planning here is pure (no I/O): :func:`plan_reads` takes the listed shards and the store's
leases and returns the shards to start with their starting positions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from consumers.checkpoint.base import Lease
from consumers.kinesis.positions import (
    AT_SEQUENCE_NUMBER,
    LATEST,
    TRIM_HORIZON,
    StartKind,
    StartPosition,
)
from shardline.records import SHARD_END
from shardline.shardmath import ShardInfo, ShardMap

__all__ = ["ShardAssignment", "plan_reads", "resume_position"]


@dataclass(frozen=True, slots=True)
class ShardAssignment:
    """A shard that may be read now, and the position its reader starts at."""

    shard: ShardInfo
    start: StartPosition

    @property
    def shard_id(self) -> str:
        return self.shard.shard_id


def resume_position(lease: Lease | None, fallback: StartPosition) -> StartPosition:
    """Where to resume a shard whose lease is ``lease``.

    A checkpointed shard resumes AT the checkpointed sequence number, skipping its
    sub-records up to the checkpointed sub-sequence number.  AFTER_SEQUENCE_NUMBER would be
    wrong when the checkpoint sits inside a KPL aggregate (the aggregate's later sub-records
    share its sequence number), and sub-sequence 0 cannot tell "plain record" from "first
    sub-record"; AT plus skip is right for both at the price of one re-read record.

    A lease without progress that carries a KCL initial-position sentinel starts where the
    sentinel says, as the KCL would start it.  The KCL keeps no timestamp in the lease, so
    ``AT_TIMESTAMP`` takes the timestamp of ``fallback`` (the consumer's own AT_TIMESTAMP
    start); a consumer started otherwise reads such a shard from TRIM_HORIZON, which
    repeats records rather than skipping any.
    """
    if lease is None or lease.checkpoint == SHARD_END:
        return fallback
    if lease.checkpoint is None:
        if lease.initial_position == StartKind.TRIM_HORIZON.value:
            return TRIM_HORIZON
        if lease.initial_position == StartKind.LATEST.value:
            return LATEST
        if lease.initial_position == StartKind.AT_TIMESTAMP.value:
            return fallback if fallback.kind is StartKind.AT_TIMESTAMP else TRIM_HORIZON
        return fallback
    return AT_SEQUENCE_NUMBER(lease.checkpoint, skip_through_sub_sequence=lease.sub_sequence_number)


def plan_reads(
    shards: ShardMap | Iterable[ShardInfo],
    leases: Mapping[str, Lease] | Iterable[Lease],
    initial: StartPosition = TRIM_HORIZON,
    *,
    exclude: Iterable[str] = (),
) -> list[ShardAssignment]:
    """The shards that may be read now, in hash-key order, each with its start position.

    Rules:
      * a shard whose lease is checkpointed at SHARD_END is finished, and so is a listed
        shard without a lease that is an ancestor of a shard with progress (the KCL deletes a
        finished shard's lease once its children made progress, see
        :func:`_finished_before_progressed_children`);
      * a shard is readable when each parent is finished or no longer listed (trimmed past
        the retention period);
      * a never-checkpointed shard whose parent was tracked (has a lease) starts at its
        beginning (TRIM_HORIZON; AT_TIMESTAMP keeps its timestamp), because its parent's
        records were read up to the split; otherwise it starts at ``initial``;
      * with ``initial`` LATEST, closed shards that nobody ever tracked are skipped (treated
        as finished), as the KCL does: "latest" means the open shards' tips, not the history.
    ``exclude`` names shards already being read.
    """
    shard_map = shards if isinstance(shards, ShardMap) else ShardMap(shards, key_cache_size=0)
    by_shard = dict(leases) if isinstance(leases, Mapping) else {lease.shard_id: lease for lease in leases}
    finished = {shard_id for shard_id, lease in by_shard.items() if lease.checkpoint == SHARD_END}
    finished |= _finished_before_progressed_children(shard_map, by_shard)
    if initial.kind is StartKind.LATEST:
        finished |= _untracked_closed(shard_map, by_shard)
    excluded = set(exclude)
    plans: list[ShardAssignment] = []
    for shard in shard_map.ready_to_read(finished):
        if shard.shard_id in excluded:
            continue
        tracked_parent = any(parent in by_shard for parent in shard.parents)
        if tracked_parent:
            fallback = initial if initial.kind is StartKind.AT_TIMESTAMP else TRIM_HORIZON
        else:
            fallback = initial
        plans.append(ShardAssignment(shard, resume_position(by_shard.get(shard.shard_id), fallback)))
    return plans


def _finished_before_progressed_children(shard_map: ShardMap, leases: Mapping[str, Lease]) -> set[str]:
    """Listed shards without a lease whose descendant's lease shows progress: finished.

    The KCL deletes the lease of a shard that reached SHARD_END once every child checkpointed
    past its start (``LeaseCleanupManager``, ``cleanupLeasesUponShardCompletion``, on by
    default), while ListShards keeps listing the shard until its records expire.  A child is
    read only after its parents finished, so its progress proves them finished.  Counted as
    unread, such a parent was read again from the start, its whole retained history delivered
    after the child's newer records, and the child held back until then.  Ancestors that
    still have a lease keep following it.
    """
    finished: set[str] = set()
    pending = [shard_id for shard_id, lease in leases.items() if lease.checkpoint is not None]
    while pending:
        shard = shard_map.get(pending.pop())
        if shard is None:
            continue
        for parent in shard.parents:
            listed = shard_map.get(parent)
            # an open shard is never finished, whatever a (crafted) listing calls its child
            if parent not in leases and parent not in finished and listed is not None and not listed.is_open:
                finished.add(parent)
                pending.append(parent)
    return finished


def _untracked_closed(shard_map: ShardMap, leases: Mapping[str, Lease]) -> set[str]:
    """Closed shards without a lease and without a tracked ancestor (LATEST skips them)."""
    untracked: dict[str, bool] = {}

    def is_untracked(shard_id: str) -> bool:
        if shard_id in untracked:
            return untracked[shard_id]
        untracked[shard_id] = False  # guards against malformed cycles
        shard = shard_map.get(shard_id)
        result = shard_id not in leases and (
            shard is None or all(is_untracked(parent) for parent in shard.parents if parent in shard_map)
        )
        untracked[shard_id] = result
        return result

    return {
        shard.shard_id for shard in shard_map.shards if not shard.is_open and is_untracked(shard.shard_id)
    }
