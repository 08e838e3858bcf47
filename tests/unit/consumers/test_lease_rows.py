"""A lease-table row is read as the KCL writes it; any other row is a CheckpointError."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.checkpoint.dynamodb import _handoff_owner, _lease_from_item
from shardline.errors import CheckpointError

KCL_ROW = {
    "leaseKey": {"S": "shardId-000000000001"},
    "leaseOwner": {"S": "worker-a"},
    "leaseCounter": {"N": "7"},
    "checkpoint": {"S": "49590338271490256608559692538361571095921575989136588898"},
    "checkpointSubSequenceNumber": {"N": "0"},
    "parentShardId": {"SS": ["shardId-000000000000"]},
}


def test_a_kcl_row_is_a_lease() -> None:
    lease = _lease_from_item(dict(KCL_ROW))
    assert lease.shard_id == "shardId-000000000001" and lease.counter == 7
    assert lease.parent_shard_ids == ("shardId-000000000000",)


def test_members_a_kcl_row_may_lack_take_their_defaults() -> None:
    row = {"leaseKey": {"S": "shardId-000000000001"}, "checkpoint": {"S": "TRIM_HORIZON"}}
    lease = _lease_from_item(row)
    assert (lease.owner, lease.counter, lease.sub_sequence_number, lease.parent_shard_ids) == (None, 0, 0, ())
    assert lease.checkpoint is None and lease.initial_position == "TRIM_HORIZON"


@pytest.mark.parametrize(
    "change",
    [
        {"leaseCounter": {"N": "1.5"}},
        {"checkpointSubSequenceNumber": {"N": "x"}},
        {"leaseKey": {"N": "1"}},
        {"leaseOwner": "worker-a"},
        # a member of another DynamoDB type: not read as missing (a counter as 0 failed every
        # take as if another worker held the lease; a checkpoint as none restarted the shard)
        {"leaseCounter": {"S": "7"}},
        {"checkpoint": {"N": "49590338271490256608559692538361571095921575989136588898"}},
        {"checkpointSubSequenceNumber": {"S": "0"}},
        {"leaseOwner": {"N": "1"}},
        {"parentShardId": {"S": "shardId-000000000000"}},
        {"leaseCounter": {"N": "7", "S": "7"}},
    ],
)
def test_a_row_no_kcl_worker_writes_is_a_checkpoint_error(change: dict[str, Any]) -> None:
    with pytest.raises(CheckpointError, match="is not a lease"):
        _lease_from_item({**KCL_ROW, **change})


def test_a_mistyped_hand_off_target_is_a_checkpoint_error_not_no_hand_off() -> None:
    assert _handoff_owner(dict(KCL_ROW)) is None
    assert _handoff_owner({**KCL_ROW, "checkpointOwner": {"S": "worker-b"}}) == "worker-b"
    with pytest.raises(CheckpointError, match="is not a lease"):
        _handoff_owner({**KCL_ROW, "checkpointOwner": {"N": "1"}})
