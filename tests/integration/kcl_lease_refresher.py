"""The Java KCL's lease-table reads and writes, request for request, for the compatibility suite.

Each method issues the DynamoDB request the KCL's ``DynamoDBLeaseRefresher`` issues (the legacy
``Expected`` / ``AttributeUpdates`` parameters included), with the attributes
``DynamoDBLeaseSerializer`` produces (awslabs/amazon-kinesis-client v3.5.1, commit
024eb86e2163a3d211cacf21f44f5411b6c41c53; v2.7.3 differs only where noted).  :func:`kcl_read`
is ``DynamoDBLeaseSerializer.fromDynamoRecord`` plus the checks ``ExtendedSequenceNumber``
applies to the checkpoint when the KCL starts reading the shard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SENTINELS = {"TRIM_HORIZON", "LATEST", "AT_TIMESTAMP", "SHARD_END"}


@dataclass(frozen=True)
class KclLease:
    """The fields of ``software.amazon.kinesis.leases.Lease`` the suite compares."""

    lease_key: str
    owner: str | None
    counter: int
    owner_switches: int
    checkpoint: str
    sub_sequence: int
    parents: frozenset[str]
    checkpoint_owner: str | None


def kcl_read(item: dict[str, Any]) -> KclLease | None:
    """What the KCL makes of a row: ``None`` for a non-lease entity, an error where it fails."""
    entity_type = item.get("entityType", {}).get("S")
    if entity_type is not None and entity_type != "LEASE":
        return None
    checkpoint = item.get("checkpoint", {}).get("S")
    # ExtendedSequenceNumber(null) is accepted by the serializer but the shard cannot start from
    # it: the record fetcher and IteratorBuilder need digits or a sentinel
    if checkpoint is None:
        raise ValueError(f"lease {item['leaseKey']['S']} has no checkpoint: the KCL cannot start it")
    if not (checkpoint.isdigit() or checkpoint in SENTINELS):
        raise ValueError(
            f"Expected a string of digits, TRIM_HORIZON, LATEST or AT_TIMESTAMP but received {checkpoint}"
        )
    return KclLease(
        lease_key=item["leaseKey"]["S"],
        owner=item.get("leaseOwner", {}).get("S"),
        counter=int(item["leaseCounter"]["N"]),  # safeGetLong; a lease always has one
        owner_switches=int(item.get("ownerSwitchesSinceCheckpoint", {}).get("N", "0")),
        checkpoint=checkpoint,
        sub_sequence=int(item.get("checkpointSubSequenceNumber", {}).get("N", "0")),
        parents=frozenset(item.get("parentShardId", {}).get("SS", [])),
        checkpoint_owner=item.get("checkpointOwner", {}).get("S"),
    )


class KclLeaseRefresher:
    """``DynamoDBLeaseRefresher`` over a boto3 DynamoDB client (synchronous, like the KCL's calls)."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def list_leases(self) -> list[KclLease]:
        items = self.client.scan(TableName=self.table, ConsistentRead=True)["Items"]
        return sorted(
            (lease for lease in map(kcl_read, items) if lease is not None), key=lambda x: x.lease_key
        )

    def get(self, key: str) -> KclLease | None:
        item = self.client.get_item(TableName=self.table, Key={"leaseKey": {"S": key}}, ConsistentRead=True)
        return None if "Item" not in item else kcl_read(item["Item"])

    def create_lease_if_not_exists(self, key: str, checkpoint: str, parents: tuple[str, ...] = ()) -> bool:
        """``createLeaseIfNotExists`` with ``toDynamoRecord`` of a new lease (``newKCLLease``)."""
        item: dict[str, Any] = {
            "leaseKey": {"S": key},
            "leaseCounter": {"N": "0"},
            "ownerSwitchesSinceCheckpoint": {"N": "0"},
            "checkpoint": {"S": checkpoint},
            "checkpointSubSequenceNumber": {"N": "0"},
            "entityType": {"S": "LEASE"},
        }
        if parents:
            item["parentShardId"] = {"SS": list(parents)}
        try:
            self.client.put_item(TableName=self.table, Item=item, Expected={"leaseKey": {"Exists": False}})
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def take_lease(self, lease: KclLease, owner: str) -> bool:
        """``takeLease``: counter PUT +1 expecting the counter; owner PUT; switches ADD 1 on a switch."""
        updates: dict[str, Any] = {
            "leaseCounter": {"Value": {"N": str(lease.counter + 1)}, "Action": "PUT"},
            "leaseOwner": {"Value": {"S": owner}, "Action": "PUT"},
            "checkpointOwner": {"Action": "DELETE"},
        }
        if (lease.owner is not None and lease.owner != owner) or lease.checkpoint_owner == owner:
            updates["ownerSwitchesSinceCheckpoint"] = {"Value": {"N": "1"}, "Action": "ADD"}
        return self._update(lease.lease_key, {"leaseCounter": {"Value": {"N": str(lease.counter)}}}, updates)

    def checkpoint(self, lease: KclLease, sequence_number: str, sub_sequence: int) -> bool:
        """``DynamoDBCheckpointer.setCheckpoint`` -> ``updateLease``."""
        updates = {
            "leaseCounter": {"Value": {"N": str(lease.counter + 1)}, "Action": "PUT"},
            "checkpoint": {"Value": {"S": sequence_number}, "Action": "PUT"},
            "checkpointSubSequenceNumber": {"Value": {"N": str(sub_sequence)}, "Action": "PUT"},
            "ownerSwitchesSinceCheckpoint": {"Value": {"N": "0"}, "Action": "PUT"},
            "pendingCheckpoint": {"Action": "DELETE"},
            "pendingCheckpointSubSequenceNumber": {"Action": "DELETE"},
            "pendingCheckpointState": {"Action": "DELETE"},
        }
        return self._update(lease.lease_key, {"leaseCounter": {"Value": {"N": str(lease.counter)}}}, updates)

    def evict_lease(self, lease: KclLease) -> bool:
        """``evictLease`` (3.x): owner and checkpointOwner DELETE, counter ADD 1, expecting the owner."""
        expected: dict[str, Any] = {
            "leaseOwner": {"Value": {"S": lease.owner}} if lease.owner else {"Exists": False},
            "checkpointOwner": (
                {"Value": {"S": lease.checkpoint_owner}} if lease.checkpoint_owner else {"Exists": False}
            ),
            "leaseKey": {"Value": {"S": lease.lease_key}, "Exists": True},
        }
        updates = {
            "leaseOwner": {"Action": "DELETE"},
            "checkpointOwner": {"Action": "DELETE"},
            "leaseCounter": {"Value": {"N": "1"}, "Action": "ADD"},
        }
        return self._update(lease.lease_key, expected, updates)

    def _update(self, key: str, expected: dict[str, Any], updates: dict[str, Any]) -> bool:
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"leaseKey": {"S": key}},
                Expected=expected,
                AttributeUpdates=updates,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True
