"""A lease-table row is read as the KCL writes it; any other row is a CheckpointError."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.checkpoint.dynamodb import _lease_from_item
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


@pytest.mark.parametrize(
    "change",
    [
        {"leaseCounter": {"N": "1.5"}},
        {"checkpointSubSequenceNumber": {"N": "x"}},
        {"leaseKey": {"N": "1"}},
        {"leaseOwner": "worker-a"},
    ],
)
def test_a_row_no_kcl_worker_writes_is_a_checkpoint_error(change: dict[str, Any]) -> None:
    with pytest.raises(CheckpointError, match="is not a lease"):
        _lease_from_item({**KCL_ROW, **change})
