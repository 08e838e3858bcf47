"""A lease-table row is read as the KCL writes it; any other row is a LeaseRowError (a
CheckpointError), which the stores' ``list()`` logs and leaves out instead of failing."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from consumers.checkpoint.dynamodb import _handoff_owner, _is_lease, _lease_from_item, _leases_of
from consumers.checkpoint.sqlite import SQLiteCheckpointStore
from shardline.errors import CheckpointError, ConfigurationError, LeaseRowError

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
    row = {
        "leaseKey": {"S": "shardId-000000000001"},
        "leaseCounter": {"N": "0"},
        "checkpoint": {"S": "TRIM_HORIZON"},
    }
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
        {"checkpoint": {"S": "garbage"}},
        {"checkpointSubSequenceNumber": {"N": "-1"}},  # read as a skip it could not be
        {"ownerSwitchesSinceCheckpoint": {"S": "1"}},  # a take adds to it: the write failed
        {"leaseCounter": {"NULL": True}},  # read as 0: every take failed as if another worker won
        {"checkpoint": {"S": "1" * 129}},  # no sequence number has more than 128 digits
        # no KCL worker's counter (a Java long); one DynamoDB cannot add one to (38 digits)
        # made the take an invalid request that ended the whole source
        {"leaseCounter": {"N": str(2**63)}},
        {"leaseCounter": {"N": str(-(2**63) - 1)}},
        {"leaseCounter": {"N": "1" + "0" * 40}},
    ],
)
def test_a_row_no_kcl_worker_writes_is_a_lease_row_error(change: dict[str, Any]) -> None:
    with pytest.raises(LeaseRowError, match="is not a lease"):
        _lease_from_item({**KCL_ROW, **change})


def test_counters_at_the_ends_of_the_kcl_range_are_read() -> None:
    for counter in (2**63 - 1, -(2**63)):
        assert _lease_from_item({**KCL_ROW, "leaseCounter": {"N": str(counter)}}).counter == counter


def test_a_row_without_a_lease_counter_is_a_lease_row_error_naming_it() -> None:
    """Every KCL and Shardline write of a lease carries ``leaseCounter``: a row without one
    was read as counter 0, listed as a lease nobody held, and every take of it failed its
    condition as a LeaseLostError, so the shard was silently never read."""
    row = {key: value for key, value in KCL_ROW.items() if key != "leaseCounter"}
    with pytest.raises(LeaseRowError, match=r"shardId-000000000001.*leaseCounter is missing"):
        _lease_from_item(row)


def test_null_members_are_absent_ones_as_the_kcl_reads_them() -> None:
    # what boto3 writes for None: an operator's script clearing the owner made the row unreadable
    lease = _lease_from_item({**KCL_ROW, "leaseOwner": {"NULL": True}, "parentShardId": {"NULL": True}})
    assert lease.owner is None and lease.parent_shard_ids == ()


def test_an_entity_type_that_is_not_a_string_is_no_lease() -> None:
    assert _is_lease(dict(KCL_ROW)) and _is_lease({**KCL_ROW, "entityType": {"S": "LEASE"}})
    assert not _is_lease({**KCL_ROW, "entityType": {"N": "1"}})


def test_listing_leaves_out_a_bad_row_and_names_it(caplog: pytest.LogCaptureFixture) -> None:
    bad = {**KCL_ROW, "leaseKey": {"S": "shardId-000000000002"}, "leaseCounter": {"S": "x"}}
    with caplog.at_level(logging.WARNING):
        leases = _leases_of([dict(KCL_ROW), bad])
    assert [lease.shard_id for lease in leases] == ["shardId-000000000001"]
    assert "shardId-000000000002" in caplog.text


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("checkpoint", "not-a-number"),
        ("checkpoint_sub_sequence_number", -3),
        ("checkpoint_sub_sequence_number", 1.5),
        ("lease_counter", "x"),
        ("parent_shard_ids", "oops"),
        ("parent_shard_ids", "5"),
        ("parent_shard_ids", '"shardId-000000000007"'),  # was read as its characters
        ("checkpoint", "1" * 129),  # no sequence number has more than 128 digits
    ],
)
async def test_a_sqlite_row_it_never_writes_is_a_lease_row_error(
    column: str, value: object, tmp_path: Path
) -> None:
    path = tmp_path / "leases.db"
    store = SQLiteCheckpointStore(str(path))
    await store.create_if_absent("shard-0")
    await store.create_if_absent("shard-1")
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(
            f"UPDATE shardline_leases SET {column} = ? WHERE lease_key = 'shard-1'",
            (value,),
        )
    connection.close()
    with pytest.raises(LeaseRowError, match="shard-1"):
        await store.get("shard-1")
    assert [lease.shard_id for lease in await store.list()] == ["shard-0"]
    await store.close()


def test_a_mistyped_hand_off_target_is_a_checkpoint_error_not_no_hand_off() -> None:
    assert _handoff_owner(dict(KCL_ROW)) is None
    assert _handoff_owner({**KCL_ROW, "checkpointOwner": {"S": "worker-b"}}) == "worker-b"
    with pytest.raises(CheckpointError, match="is not a lease"):
        _handoff_owner({**KCL_ROW, "checkpointOwner": {"N": "1"}})


def test_a_multi_stream_kcl_table_is_refused_not_read_past() -> None:
    """A multi-stream KCL application keys its leases ``account:stream:epoch:shardId`` and names
    the stream in ``streamName`` (amazon-kinesis-client's DynamoDBMultiStreamLeaseSerializer).
    Passed over as leases of unlisted shards, they made Shardline start every shard afresh."""
    multi_stream_row = {
        **KCL_ROW,
        "leaseKey": {"S": "123456789012:telemetry:1700000000:shardId-000000000001"},
        "streamName": {"S": "123456789012:telemetry:1700000000"},
        "shardId": {"S": "shardId-000000000001"},
    }
    with pytest.raises(ConfigurationError, match="multi-stream KCL application"):
        _leases_of([dict(KCL_ROW), multi_stream_row])
    assert [lease.shard_id for lease in _leases_of([dict(KCL_ROW)])] == ["shardId-000000000001"]
