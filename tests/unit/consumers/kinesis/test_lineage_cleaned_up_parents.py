"""A lease table the KCL cleaned up: finished parents whose lease was deleted are not read again.

The KCL deletes the lease of a shard at SHARD_END once each child checkpointed past its start
(``LeaseCleanupManager.cleanupLeaseForCompletedShard``; ``cleanupLeasesUponShardCompletion`` is
on by default), while ListShards lists the parent until its records expire.  Such a parent was
planned as never read: read again from TRIM_HORIZON, its whole retained history delivered after
the child's newer records, with the child held back until then.
"""

from __future__ import annotations

from consumers.kinesis.lineage import plan_reads
from consumers.kinesis.positions import LATEST, TRIM_HORIZON, StartKind
from shardline.records import SHARD_END
from tests.unit.consumers.kinesis.test_kinesis_lineage import HALF, MAX, MERGE, SPLIT, ids, lease, shard


def test_merge_child_with_progress_resumes_when_one_parents_row_was_deleted() -> None:
    plans = plan_reads(MERGE, [lease("a", SHARD_END), lease("m", "500")], TRIM_HORIZON)

    assert ids(plans) == ["m"]
    (plan,) = plans
    assert plan.start.kind is StartKind.AT_SEQUENCE_NUMBER and plan.start.sequence_number == "500"


def test_split_children_with_progress_resume_when_the_parents_row_was_deleted() -> None:
    plans = plan_reads(SPLIT, [lease("c1", "600"), lease("c2", SHARD_END)], TRIM_HORIZON)

    assert ids(plans) == ["c1"]


def test_every_cleaned_up_ancestor_counts_as_finished() -> None:
    shards = [
        shard("g", 0, MAX, closed=True),
        shard("p", 0, MAX, "g", closed=True),
        shard("c", 0, HALF - 1, "p"),
        shard("d", HALF, MAX, "p"),
    ]
    # the KCL deleted g's lease, then p's; c made progress, d has not started yet
    plans = plan_reads(shards, [lease("c", "900"), lease("d", None)], TRIM_HORIZON)

    assert ids(plans) == ["c", "d"]


def test_a_parent_without_a_lease_still_comes_first_when_no_child_made_progress() -> None:
    # a first start on a stream that was resharded: nothing proves the parent was read
    assert ids(plan_reads(MERGE, [lease("m", None)], TRIM_HORIZON)) == ["a", "b"]
    assert ids(plan_reads(SPLIT, [], TRIM_HORIZON)) == ["p"]


def test_a_parent_that_still_has_a_lease_follows_its_lease() -> None:
    # b is being read (its row says so): m waits for it, whatever m's own row holds
    plans = plan_reads(MERGE, [lease("a", SHARD_END), lease("b", "42"), lease("m", "500")], TRIM_HORIZON)

    assert ids(plans) == ["b"]


def test_latest_start_is_unchanged() -> None:
    assert ids(plan_reads(SPLIT, [lease("c1", "600")], LATEST)) == ["c1", "c2"]


def test_an_open_shard_is_never_counted_finished() -> None:
    # a listing no real stream gives: an open shard named as the parent of a checkpointed one
    shards = [shard("o", 0, HALF - 1), shard("c", HALF, MAX, "o")]

    assert ids(plan_reads(shards, [lease("c", "5")], TRIM_HORIZON)) == ["o"]
