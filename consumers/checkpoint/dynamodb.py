"""Checkpoints in a DynamoDB table with the KCL lease-table schema.

The items are the ones the Kinesis Client Library writes (``leaseKey`` = shard id,
``checkpoint``, ``checkpointSubSequenceNumber``, ``leaseOwner``, ``leaseCounter``,
``ownerSwitchesSinceCheckpoint``, ``parentShardId`` as a string set, ``SHARD_END``), so the
table can be inspected with KCL tooling and an application can move between Shardline and
the KCL without losing its place.

Every mutating call is a conditional ``UpdateItem`` on ``leaseCounter`` (and ``leaseOwner``
for an owner's writes): DynamoDB evaluates the condition atomically, so the loser of a race
and a stale worker both get ``ConditionalCheckFailedException``, surfaced as
:class:`shardline.errors.LeaseLostError`.  Throttles and transient errors are retried a
bounded number of times with jittered backoff; a conditional failure is never retried.

A retried write whose first attempt was applied although its response was lost (timeout,
dropped connection) finds its own condition false.  ``acquire`` and ``renew`` bump the
counter, so they then read the lease back: owner us and counter exactly one past what we
sent means the write was ours, and the lease is returned instead of a false
:class:`~shardline.errors.LeaseLostError`.  ``checkpoint`` does not bump the counter, so its
retry simply succeeds again.

Namespaces map to tables: the default namespace uses ``table_name`` itself, any other
``f"{table_name}-{namespace}"``, so a replay job never touches a live consumer's leases.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from consumers.checkpoint.base import (
    DEFAULT_NAMESPACE,
    Lease,
    validate_checkpoint_value,
    validate_namespace,
    validate_shard_id,
)
from shardline.clients import aiobotocore_client
from shardline.errormap import map_aws_errors
from shardline.errors import (
    CheckpointError,
    ClosedError,
    ConditionalCheckFailedError,
    LeaseLostError,
    ResourceInUseError,
    ValidationError,
)
from shardline.retry import RetryPolicy

__all__ = ["DynamoDBCheckpointStore", "table_name_for"]

_T = TypeVar("_T")

_log = logging.getLogger(__name__)


class _Attempts:
    """How many tries one logical call took (filled in by ``_call``)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

# KCL lease-table attribute names.
LEASE_KEY = "leaseKey"
CHECKPOINT = "checkpoint"
CHECKPOINT_SUB_SEQUENCE = "checkpointSubSequenceNumber"
LEASE_OWNER = "leaseOwner"
LEASE_COUNTER = "leaseCounter"
OWNER_SWITCHES = "ownerSwitchesSinceCheckpoint"
PARENT_SHARD_ID = "parentShardId"

_DEFAULT_RETRY = RetryPolicy(max_attempts=8, initial_backoff=0.05, max_backoff=2.0, deadline=30.0)


def table_name_for(table_name: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """The DynamoDB table holding ``namespace``'s leases."""
    validate_namespace(namespace)
    name = table_name if namespace == DEFAULT_NAMESPACE else f"{table_name}-{namespace}"
    if not 3 <= len(name) <= 255 or not all(ch.isalnum() or ch in "_.-" for ch in name):
        raise ValidationError("DynamoDB table names are 3-255 characters of [A-Za-z0-9_.-]")
    return name


class DynamoDBCheckpointStore:
    """Leases of one namespace in a KCL-compatible DynamoDB lease table.

    Pass an entered aiobotocore DynamoDB ``client`` to share one; otherwise the store
    builds its own through :func:`shardline.clients.aiobotocore_client` from ``session`` (or
    the default one), honouring the standard AWS configuration (``AWS_PROFILE``,
    ``AWS_REGION``, ``AWS_ENDPOINT_URL_DYNAMODB``) with the project's client settings (no
    botocore retries underneath the store's own, timeouts), and closes it in :meth:`close`.
    ``create_table=True`` creates the table (on-demand billing)
    on first use when it does not exist.
    """

    def __init__(
        self,
        table_name: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        client: Any = None,
        session: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        create_table: bool = False,
        retry: RetryPolicy = _DEFAULT_RETRY,
    ) -> None:
        self.namespace = validate_namespace(namespace)
        self.table_name = table_name_for(table_name, namespace)
        self._client = client
        self._session = session
        self._region_name = region_name
        self._endpoint_url = endpoint_url
        self._create_table = create_table
        self._retry = retry
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._ready = False
        self._closed = False

    def __repr__(self) -> str:
        return f"DynamoDBCheckpointStore(table_name={self.table_name!r}, namespace={self.namespace!r})"

    # --- client lifecycle ---------------------------------------------------------------------

    async def _dynamodb(self) -> Any:
        if self._closed:
            raise ClosedError("checkpoint store is closed")
        if self._client is None:
            stack = contextlib.AsyncExitStack()
            self._client = await stack.enter_async_context(
                aiobotocore_client(
                    "dynamodb",
                    session=self._session,
                    region_name=self._region_name,
                    endpoint_url=self._endpoint_url,
                )
            )
            self._exit_stack = stack
        if not self._ready:
            if self._create_table:
                await self._ensure_table(self._client)
            self._ready = True
        return self._client

    async def _ensure_table(self, client: Any) -> None:
        # ResourceInUse: created already (by another worker, or CloudFormation)
        with contextlib.suppress(ResourceInUseError):
            await self._call(
                lambda: client.create_table(
                    TableName=self.table_name,
                    AttributeDefinitions=[{"AttributeName": LEASE_KEY, "AttributeType": "S"}],
                    KeySchema=[{"AttributeName": LEASE_KEY, "KeyType": "HASH"}],
                    BillingMode="PAY_PER_REQUEST",
                )
            )
        waiter = client.get_waiter("table_exists")
        await waiter.wait(TableName=self.table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    async def _call(self, operation: Callable[[], Awaitable[_T]], attempts: _Attempts | None = None) -> _T:
        """Run one API call: botocore errors mapped to the error tree, retriable ones retried.

        ``attempts`` (when given) counts the tries, so a caller can tell a conditional failure
        of the first try (definitive) from one of a retry (maybe our own earlier try).
        """

        async def attempt() -> _T:
            if attempts is not None:
                attempts.count += 1
            with map_aws_errors("dynamodb"):
                return await operation()

        return await self._retry.call(attempt)

    # --- the protocol -------------------------------------------------------------------------

    async def create_if_absent(self, shard_id: str, parent_shard_ids: Sequence[str] = ()) -> None:
        validate_shard_id(shard_id)
        parents = sorted({validate_shard_id(parent) for parent in parent_shard_ids})
        client = await self._dynamodb()
        item: dict[str, Any] = {
            LEASE_KEY: {"S": shard_id},
            LEASE_COUNTER: {"N": "0"},
            OWNER_SWITCHES: {"N": "0"},
        }
        if parents:
            item[PARENT_SHARD_ID] = {"SS": parents}
        with contextlib.suppress(ConditionalCheckFailedError):  # it exists: exactly what we wanted
            await self._call(
                lambda: client.put_item(
                    TableName=self.table_name,
                    Item=item,
                    ConditionExpression="attribute_not_exists(#key)",
                    ExpressionAttributeNames={"#key": LEASE_KEY},
                )
            )

    async def get(self, shard_id: str) -> Lease | None:
        validate_shard_id(shard_id)
        client = await self._dynamodb()
        response = await self._call(
            lambda: client.get_item(
                TableName=self.table_name, Key={LEASE_KEY: {"S": shard_id}}, ConsistentRead=True
            )
        )
        item = response.get("Item")
        return None if item is None else _lease_from_item(item)

    async def list(self) -> builtins.list[Lease]:
        client = await self._dynamodb()
        leases: builtins.list[Lease] = []
        start_key: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True}
            if start_key is not None:
                kwargs["ExclusiveStartKey"] = start_key
            response: dict[str, Any] = await self._call(partial(client.scan, **kwargs))
            leases.extend(_lease_from_item(item) for item in response.get("Items", []))
            start_key = response.get("LastEvaluatedKey")
            if not start_key:
                return sorted(leases, key=lambda lease: lease.shard_id)

    async def acquire(self, shard_id: str, owner: str) -> Lease:
        validate_shard_id(shard_id)
        if not owner:
            raise CheckpointError("lease owner must be a non-empty string")
        current = await self.get(shard_id)
        if current is None:
            raise CheckpointError(f"no lease for shard {shard_id!r}; create it first")
        client = await self._dynamodb()
        switches = 1 if current.owner != owner else 0
        attempts = _Attempts()
        try:
            response = await self._call(
                lambda: client.update_item(
                    TableName=self.table_name,
                    Key={LEASE_KEY: {"S": shard_id}},
                    UpdateExpression="SET #owner = :owner, #counter = #counter + :one, "
                    "#switches = if_not_exists(#switches, :zero) + :switched",
                    ConditionExpression="#counter = :expected",
                    ExpressionAttributeNames={
                        "#owner": LEASE_OWNER,
                        "#counter": LEASE_COUNTER,
                        "#switches": OWNER_SWITCHES,
                    },
                    ExpressionAttributeValues={
                        ":owner": {"S": owner},
                        ":one": {"N": "1"},
                        ":zero": {"N": "0"},
                        ":switched": {"N": str(switches)},
                        ":expected": {"N": str(current.counter)},
                    },
                    ReturnValues="ALL_NEW",
                ),
                attempts,
            )
        except ConditionalCheckFailedError as exc:
            mine = await self._own_bump(shard_id, owner, current.counter + 1) if attempts.count > 1 else None
            if mine is not None:
                return mine
            raise LeaseLostError(f"another worker took the lease on shard {shard_id!r} first") from exc
        return _lease_from_item(response["Attributes"])

    async def renew(self, lease: Lease) -> Lease:
        attempts = _Attempts()
        try:
            return await self._fenced_update(
                lease, "SET #counter = #counter + :one", {":one": {"N": "1"}}, attempts=attempts
            )
        except LeaseLostError:
            if lease.owner is not None and attempts.count > 1:
                mine = await self._own_bump(lease.shard_id, lease.owner, lease.counter + 1)
                if mine is not None:
                    return mine
            raise

    async def checkpoint(self, lease: Lease, sequence_number: str, sub_sequence_number: int = 0) -> Lease:
        validate_checkpoint_value(sequence_number, sub_sequence_number)
        return await self._fenced_update(
            lease,
            "SET #checkpoint = :checkpoint, #sub = :sub, #switches = :zero",
            {
                ":checkpoint": {"S": sequence_number},
                ":sub": {"N": str(sub_sequence_number)},
                ":zero": {"N": "0"},
            },
            {"#checkpoint": CHECKPOINT, "#sub": CHECKPOINT_SUB_SEQUENCE, "#switches": OWNER_SWITCHES},
        )

    async def release(self, lease: Lease) -> None:
        with contextlib.suppress(LeaseLostError):
            await self._fenced_update(lease, "REMOVE #owner", {})

    async def close(self) -> None:
        self._closed = True
        stack, self._exit_stack = self._exit_stack, None
        if stack is not None:
            self._client = None
            await stack.aclose()

    # --- helpers ------------------------------------------------------------------------------

    async def _own_bump(self, shard_id: str, owner: str, counter: int) -> Lease | None:
        """The lease if it shows our own counter bump (``owner`` at exactly ``counter``).

        Called after a *retried* counter-bumping write found its condition false: if an
        earlier attempt of the same call was applied and only its response was lost, the row
        carries exactly what that attempt wrote, and no other worker can have produced that
        state.  (A first attempt failing its condition is definitive: a stale copy.)
        """
        current = await self.get(shard_id)
        if current is None or current.owner != owner or current.counter != counter:
            return None
        _log.info("lease write was applied although its response was lost", extra={"shard": shard_id})
        return current

    async def _fenced_update(
        self,
        lease: Lease,
        update_expression: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
        *,
        attempts: _Attempts | None = None,
    ) -> Lease:
        """An update applied only while ``lease.owner`` holds the lease at ``lease.counter``."""
        validate_shard_id(lease.shard_id)
        if lease.owner is None:
            raise LeaseLostError(f"lease on shard {lease.shard_id!r} has no owner")
        client = await self._dynamodb()
        try:
            response = await self._call(
                lambda: client.update_item(
                    TableName=self.table_name,
                    Key={LEASE_KEY: {"S": lease.shard_id}},
                    UpdateExpression=update_expression,
                    ConditionExpression="#owner = :held_by AND #counter = :held_at",
                    ExpressionAttributeNames={
                        "#owner": LEASE_OWNER,
                        "#counter": LEASE_COUNTER,
                        **(names or {}),
                    },
                    ExpressionAttributeValues={
                        ":held_by": {"S": lease.owner},
                        ":held_at": {"N": str(lease.counter)},
                        **values,
                    },
                    ReturnValues="ALL_NEW",
                ),
                attempts,
            )
        except ConditionalCheckFailedError as exc:
            raise LeaseLostError(
                f"lease on shard {lease.shard_id!r} is held by another worker now"
            ) from exc
        return _lease_from_item(response["Attributes"])


def _lease_from_item(item: dict[str, Any]) -> Lease:
    checkpoint = item.get(CHECKPOINT, {}).get("S")
    owner = item.get(LEASE_OWNER, {}).get("S")
    parents = item.get(PARENT_SHARD_ID, {}).get("SS", [])
    return Lease(
        shard_id=item[LEASE_KEY]["S"],
        owner=owner,
        counter=int(item.get(LEASE_COUNTER, {}).get("N", "0")),
        checkpoint=checkpoint,
        sub_sequence_number=int(item.get(CHECKPOINT_SUB_SEQUENCE, {}).get("N", "0")),
        parent_shard_ids=tuple(sorted(parents)),
    )
