from datetime import UTC, datetime

from consumers.checkpoint.base import Lease
from consumers.kinesis.lineage import plan_reads, resume_position
from consumers.kinesis.positions import AT_TIMESTAMP, LATEST, TRIM_HORIZON, StartKind
from shardline.records import SHARD_END
from shardline.shardmath import ShardInfo

MAX = 2**128 - 1
HALF = 2**127


def shard(shard_id: str, lo: int, hi: int, *parents: str, closed: bool = False) -> ShardInfo:
    return ShardInfo(
        shard_id,
        lo,
        hi,
        parent_shard_id=parents[0] if parents else None,
        adjacent_parent_shard_id=parents[1] if len(parents) > 1 else None,
        starting_sequence_number="1",
        ending_sequence_number="99" if closed else None,
    )


def lease(shard_id: str, checkpoint: str | None, sub: int = 0) -> Lease:
    return Lease(shard_id, "me", 1, checkpoint, sub)


SPLIT = [
    shard("p", 0, MAX, closed=True),
    shard("c1", 0, HALF - 1, "p"),
    shard("c2", HALF, MAX, "p"),
]
MERGE = [
    shard("a", 0, HALF - 1, closed=True),
    shard("b", HALF, MAX, closed=True),
    shard("m", 0, MAX, "a", "b"),
]


def ids(plans: list) -> list[str]:  # type: ignore[type-arg]
    return sorted(p.shard_id for p in plans)


def test_split_children_wait_for_parent_shard_end_in_store() -> None:
    assert ids(plan_reads(SPLIT, [])) == ["p"]
    # the reader reached the end but the store does not say so yet: children still wait
    assert ids(plan_reads(SPLIT, [lease("p", "55")])) == ["p"]
    plans = plan_reads(SPLIT, [lease("p", SHARD_END)])
    assert ids(plans) == ["c1", "c2"]
    assert all(p.start == TRIM_HORIZON for p in plans)


def test_merge_child_waits_for_both_parents() -> None:
    assert ids(plan_reads(MERGE, [lease("a", SHARD_END)])) == ["b"]
    assert ids(plan_reads(MERGE, [lease("a", SHARD_END), lease("b", SHARD_END)])) == ["m"]


def test_parent_past_retention_does_not_block() -> None:
    assert ids(plan_reads(SPLIT[1:], [])) == ["c1", "c2"]


def test_checkpointed_shard_resumes_at_sequence_skipping_sub_records() -> None:
    (plan,) = plan_reads(SPLIT, [lease("p", "77", 3)])
    assert plan.start.kind is StartKind.AT_SEQUENCE_NUMBER
    assert plan.start.sequence_number == "77"
    assert plan.start.skip_through_sub_sequence == 3


def test_latest_skips_untracked_closed_history_but_not_tracked_parents() -> None:
    plans = plan_reads(SPLIT, [], LATEST)
    assert ids(plans) == ["c1", "c2"]
    assert all(p.start == LATEST for p in plans)
    # the parent was being read when it split: it must finish, and children start at their beginning
    assert ids(plan_reads(SPLIT, [lease("p", "5")], LATEST)) == ["p"]
    children = plan_reads(SPLIT, [lease("p", SHARD_END)], LATEST)
    assert ids(children) == ["c1", "c2"]
    assert all(p.start == TRIM_HORIZON for p in children)


def test_at_timestamp_kept_for_children_of_tracked_parents() -> None:
    start = AT_TIMESTAMP(datetime(2024, 5, 1, tzinfo=UTC))
    plans = plan_reads(SPLIT, [lease("p", SHARD_END)], start)
    assert all(p.start == start for p in plans)


def test_exclude_and_finished_shards_not_planned() -> None:
    leases = [lease("p", SHARD_END), lease("c1", SHARD_END)]
    assert ids(plan_reads(SPLIT, leases, exclude=["c2"])) == []


def test_resume_position_fallbacks() -> None:
    assert resume_position(None, LATEST) == LATEST
    assert resume_position(lease("x", None), TRIM_HORIZON) == TRIM_HORIZON
    assert resume_position(lease("x", SHARD_END), TRIM_HORIZON) == TRIM_HORIZON
