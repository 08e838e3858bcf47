"""Checkpoints in a DynamoDB table with the KCL lease-table schema, readable by both sides.

The items are the ones the Kinesis Client Library's ``DynamoDBLeaseSerializer`` writes
(``leaseKey`` = shard id, ``checkpoint``, ``checkpointSubSequenceNumber``, ``leaseOwner``,
``leaseCounter``, ``ownerSwitchesSinceCheckpoint``, ``parentShardId`` as a string set,
``entityType`` = ``LEASE``), so an application can move between Shardline and the KCL (2.x
or 3.x) without losing its place:

* a lease without progress holds the KCL's initial-position sentinel in ``checkpoint``
  (``TRIM_HORIZON``, ``LATEST`` or ``AT_TIMESTAMP``), whoever created it; Shardline writes one
  on every lease it creates (and on a lease an earlier Shardline created without one) and
  reads the KCL's as :attr:`Lease.initial_position`.  The KCL
  keeps no timestamp in the row: an ``AT_TIMESTAMP`` lease starts at the timestamp the
  consumer is configured with, as in the KCL;
* rows of a KCL 3.x table that are not leases (``entityType`` ``LEADER``,
  ``WORKER_METRIC_STATS``, ``CLIENT_VERSION_MIGRATION``, ``TABLE_MIGRATION``, ``STREAM``)
  are never listed or taken;
* counters move as the KCL moves them: taking, renewing, checkpointing and releasing a lease
  each bump ``leaseCounter`` by one; a take counts an owner switch only when the lease had
  another owner (a first take of an unowned lease leaves ``ownerSwitchesSinceCheckpoint``
  alone) and a checkpoint resets it to 0; a checkpoint clears the KCL's pending-checkpoint
  attributes, a take and a release clear ``checkpointOwner`` (KCL 3.x graceful hand-off);
* every write is an ``UpdateItem`` naming only the attributes it changes, so attributes
  Shardline does not know (hash-key range, ``childShardIds``, ``throughputKBps``...) stay.

Every mutating call is conditional on ``leaseCounter`` (and ``leaseOwner`` for an owner's
writes): DynamoDB evaluates the condition atomically, so the loser of a race and a stale
worker both get ``ConditionalCheckFailedException``, surfaced as
:class:`shardline.errors.LeaseLostError`.  Throttles and transient errors are retried a
bounded number of times with jittered backoff; a conditional failure is never retried.

A retried write whose first attempt was applied although its response was lost (timeout,
dropped connection) finds its own condition false.  Every owner's write bumps the counter,
so it then reads the lease back: owner us, counter exactly one past what we sent (and, for a
checkpoint, the position we wrote) means the write was ours, and the lease is returned
instead of a false :class:`~shardline.errors.LeaseLostError`.

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
    INITIAL_POSITIONS,
    Lease,
    unchanged_since,
    validate_checkpoint_value,
    validate_initial_position,
    validate_namespace,
    validate_shard_id,
)
from shardline.clients import aiobotocore_client
from shardline.errormap import map_aws_errors
from shardline.errors import (
    CheckpointError,
    ClosedError,
    ConditionalCheckFailedError,
    ConfigurationError,
    LeaseLostError,
    LeaseRowError,
    ResourceInUseError,
    ResourceNotFoundError,
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
CHECKPOINT_OWNER = "checkpointOwner"
PENDING_CHECKPOINT = "pendingCheckpoint"
PENDING_CHECKPOINT_SUB_SEQUENCE = "pendingCheckpointSubSequenceNumber"
PENDING_CHECKPOINT_STATE = "pendingCheckpointState"
ENTITY_TYPE = "entityType"
MULTI_STREAM_ID = "streamName"
"""The stream a multi-stream KCL application's lease belongs to (``account:stream:epoch``)."""
LEASE_ENTITY = "LEASE"
"""KCL 3.x tags every row; rows of another ``entityType`` (leader lock, worker metrics,
migration state) share the table but are not leases.  KCL 2.x rows have no tag: all leases."""

_KCL_COUNTER_RANGE = range(-(2**63), 2**63)
"""The counters a KCL worker reads and writes: ``leaseCounter`` is a Java ``long`` there."""

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
    ``create_table=True`` creates the table on first use when it does not exist (on-demand
    billing, point-in-time recovery), as the KCL does; ``shardline consume`` asks for that
    unless the URI says ``?create_table=false``.
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

    @property
    def creates_table(self) -> bool:
        """Whether a missing table is created on first use (``create_table``)."""
        return self._create_table

    def __repr__(self) -> str:
        return f"DynamoDBCheckpointStore(table_name={self.table_name!r}, namespace={self.namespace!r})"

    # --- client lifecycle ---------------------------------------------------------------------

    async def prepare(self) -> None:
        """Make the client, and the table when the store was asked to create it, now.

        For writers that share the table (the replay job ledger keeps its own rows in it):
        they need the table to exist without reading any row through the lease reader, which
        refuses their rows as leases no worker writes.
        """
        await self._dynamodb()

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
        """Create the lease table when it is missing, the way the KCL does.

        DescribeTable first, so a worker whose role may not create tables never needs to;
        a new table gets on-demand billing and point-in-time recovery (the lease table is the
        application's position in the stream: losing it means reprocessing or skipping).
        """
        try:
            await self._call(lambda: client.describe_table(TableName=self.table_name))
            return
        except ResourceNotFoundError:
            pass
        _log.info("creating checkpoint table", extra={"table": self.table_name})
        # ResourceInUse: created meanwhile (by another worker, or CloudFormation)
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
        # a table still not ACTIVE after a minute is a WaiterError: mapped like every other
        # botocore error instead of escaping the error tree
        with map_aws_errors("dynamodb"):
            await waiter.wait(TableName=self.table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        await self._call(
            lambda: client.update_continuous_backups(
                TableName=self.table_name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
        )

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

    async def create_if_absent(
        self, shard_id: str, parent_shard_ids: Sequence[str] = (), *, initial_position: str = "TRIM_HORIZON"
    ) -> None:
        validate_shard_id(shard_id)
        validate_initial_position(initial_position)
        parents = sorted({validate_shard_id(parent) for parent in parent_shard_ids})
        client = await self._dynamodb()
        # the shape of the KCL's DynamoDBLeaseSerializer.toDynamoRecord for a new lease
        item: dict[str, Any] = {
            LEASE_KEY: {"S": shard_id},
            LEASE_COUNTER: {"N": "0"},
            OWNER_SWITCHES: {"N": "0"},
            CHECKPOINT: {"S": initial_position},
            CHECKPOINT_SUB_SEQUENCE: {"N": "0"},
            ENTITY_TYPE: {"S": LEASE_ENTITY},
        }
        if parents:
            item[PARENT_SHARD_ID] = {"SS": parents}
        try:
            await self._call(
                lambda: client.put_item(
                    TableName=self.table_name,
                    Item=item,
                    ConditionExpression="attribute_not_exists(#key)",
                    ExpressionAttributeNames={"#key": LEASE_KEY},
                )
            )
        except ConditionalCheckFailedError:
            # it exists: exactly what we wanted, unless an earlier Shardline created it without
            # a checkpoint, which the KCL cannot read: give it the sentinel, touching nothing else
            with contextlib.suppress(ConditionalCheckFailedError):
                await self._call(
                    lambda: client.update_item(
                        TableName=self.table_name,
                        Key={LEASE_KEY: {"S": shard_id}},
                        UpdateExpression="SET #checkpoint = :initial, #sub = if_not_exists(#sub, :zero)",
                        ConditionExpression="attribute_exists(#key) AND attribute_not_exists(#checkpoint)",
                        ExpressionAttributeNames={
                            "#key": LEASE_KEY,
                            "#checkpoint": CHECKPOINT,
                            "#sub": CHECKPOINT_SUB_SEQUENCE,
                        },
                        ExpressionAttributeValues={":initial": {"S": initial_position}, ":zero": {"N": "0"}},
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
        return None if item is None or not _is_lease(item) else _lease_from_item(item)

    async def list(self) -> builtins.list[Lease]:
        client = await self._dynamodb()
        leases: builtins.list[Lease] = []
        start_key: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True}
            if start_key is not None:
                kwargs["ExclusiveStartKey"] = start_key
            response: dict[str, Any] = await self._call(partial(client.scan, **kwargs))
            leases.extend(_leases_of(response.get("Items", [])))
            start_key = response.get("LastEvaluatedKey")
            if not start_key:
                return sorted(leases, key=lambda lease: lease.shard_id)

    async def acquire(self, shard_id: str, owner: str, *, expected: Lease | None = None) -> Lease:
        validate_shard_id(shard_id)
        if not owner:
            raise CheckpointError("lease owner must be a non-empty string")
        client = await self._dynamodb()
        response = await self._call(
            lambda: client.get_item(
                TableName=self.table_name, Key={LEASE_KEY: {"S": shard_id}}, ConsistentRead=True
            )
        )
        item = response.get("Item")
        if item is None or not _is_lease(item):
            raise CheckpointError(f"no lease for shard {shard_id!r}; create it first")
        current = _lease_from_item(item)
        if not unchanged_since(current, expected):
            raise LeaseLostError(f"the lease on shard {shard_id!r} changed since it was listed")
        # the take below is conditional on the counter just read: every write of a lease (the
        # KCL's and Shardline's: take, renew, checkpoint, release) bumps it, so an unchanged
        # counter is an unchanged owner too, and a renewal after this read fails the take
        # DynamoDBLeaseSerializer.getDynamoTakeLeaseUpdate: an owner switch is counted only
        # when another worker held the lease (or a graceful hand-off names us); a first take
        # of an unowned lease leaves the count alone
        checkpoint_owner = _handoff_owner(item)
        switched = (current.owner is not None and current.owner != owner) or checkpoint_owner == owner
        switches = ", #switches = if_not_exists(#switches, :zero) + :one" if switched else ""
        update = f"SET #owner = :owner, #counter = #counter + :one{switches} REMOVE #handoff"
        names = {"#owner": LEASE_OWNER, "#counter": LEASE_COUNTER, "#handoff": CHECKPOINT_OWNER}
        values = {":owner": {"S": owner}, ":one": {"N": "1"}, ":expected": {"N": str(current.counter)}}
        if switched:
            names["#switches"] = OWNER_SWITCHES
            values[":zero"] = {"N": "0"}
        attempts = _Attempts()
        try:
            response = await self._call(
                lambda: client.update_item(
                    TableName=self.table_name,
                    Key={LEASE_KEY: {"S": shard_id}},
                    UpdateExpression=update,
                    ConditionExpression="#counter = :expected",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
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
        attempts = _Attempts()
        try:
            # DynamoDBCheckpointer.setCheckpoint + DynamoDBLeaseRefresher.updateLease: the
            # position, ownerSwitchesSinceCheckpoint = 0, no pending checkpoint, counter + 1
            return await self._fenced_update(
                lease,
                "SET #checkpoint = :checkpoint, #sub = :sub, #switches = :zero, #counter = #counter + :one "
                "REMOVE #pending, #pending_sub, #pending_state",
                {
                    ":checkpoint": {"S": sequence_number},
                    ":sub": {"N": str(sub_sequence_number)},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                },
                {
                    "#checkpoint": CHECKPOINT,
                    "#sub": CHECKPOINT_SUB_SEQUENCE,
                    "#switches": OWNER_SWITCHES,
                    "#pending": PENDING_CHECKPOINT,
                    "#pending_sub": PENDING_CHECKPOINT_SUB_SEQUENCE,
                    "#pending_state": PENDING_CHECKPOINT_STATE,
                },
                attempts=attempts,
            )
        except LeaseLostError:
            if lease.owner is not None and attempts.count > 1:
                mine = await self._own_bump(lease.shard_id, lease.owner, lease.counter + 1)
                if mine is not None and (mine.checkpoint, mine.sub_sequence_number) == (
                    sequence_number,
                    sub_sequence_number,
                ):
                    return mine
            raise

    async def release(self, lease: Lease) -> None:
        # DynamoDBLeaseRefresher.evictLease: owner (and any hand-off target) removed, counter + 1
        with contextlib.suppress(LeaseLostError):
            await self._fenced_update(
                lease,
                "SET #counter = #counter + :one REMOVE #owner, #handoff",
                {":one": {"N": "1"}},
                {"#handoff": CHECKPOINT_OWNER},
            )

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
            raise LeaseLostError(f"lease on shard {lease.shard_id!r} is held by another worker now") from exc
        return _lease_from_item(response["Attributes"])


def _is_lease(item: dict[str, Any]) -> bool:
    """Whether a lease-table row is a lease (KCL 3.x keeps other entities in the same table,
    marked with a string ``entityType``; one of another type is no lease either)."""
    entity_type = item.get(ENTITY_TYPE)
    return entity_type is None or entity_type == {"S": LEASE_ENTITY}


def _leases_of(items: builtins.list[dict[str, Any]]) -> builtins.list[Lease]:
    """The leases among scanned rows.  A row that is not one (:class:`LeaseRowError`) is
    logged by its key and left out: one bad row must not stop every shard of the stream.

    A lease of a multi-stream KCL application (keyed ``account:stream:epoch:shardId``, its
    stream in ``streamName``) is a :class:`ConfigurationError` for the whole table: read as a
    lease of a shard no stream lists, it was passed over, Shardline created bare-shard-id
    leases beside it and started every shard at ``--start`` (records skipped with ``latest``,
    the retained history repeated with ``trim_horizon``) instead of at the KCL's checkpoints.
    """
    leases: builtins.list[Lease] = []
    for item in items:
        if not _is_lease(item):
            continue
        if MULTI_STREAM_ID in item:
            raise ConfigurationError(
                "the lease table belongs to a multi-stream KCL application (leases keyed "
                "account:stream:epoch:shardId); Shardline reads single-stream lease tables, so "
                "give it a table of its own or run the KCL application"
            )
        try:
            leases.append(_lease_from_item(item))
        except LeaseRowError as exc:
            _log.warning("%s; its shard is left alone until the row is fixed", exc)
    return leases


def _lease_from_item(item: dict[str, Any]) -> Lease:
    """A lease-table row as a :class:`Lease`; a row no KCL worker writes (a counter that is
    not an integer, a member of another type) is a :class:`CheckpointError` naming it."""
    return _read_row(item, _lease_from_row)


def _handoff_owner(item: dict[str, Any]) -> str | None:
    """The worker a graceful hand-off names (``checkpointOwner``), if any."""
    owner: str | None = _read_row(item, lambda row: _member(row, CHECKPOINT_OWNER, "S"))
    return owner


def _read_row(item: dict[str, Any], read: Callable[[dict[str, Any]], _T]) -> _T:
    """``read(item)``, with a row no KCL worker writes as a :class:`LeaseRowError` naming it."""
    try:
        return read(item)
    except (_BadMember, KeyError, TypeError, ValueError, AttributeError) as exc:
        lease_key = item.get(LEASE_KEY)
        shard = lease_key.get("S") if isinstance(lease_key, dict) else None
        # a _BadMember says which member (never its value); anything else only its type
        reason = str(exc) if isinstance(exc, _BadMember) else type(exc).__name__
        raise LeaseRowError(f"lease-table row {str(shard)[:128]!r} is not a lease ({reason})") from exc


class _BadMember(Exception):
    """A member of a lease row that no KCL or Shardline worker writes; the message names it."""


def _member(item: dict[str, Any], name: str, kind: str) -> Any:
    """The value of attribute ``name``, of DynamoDB type ``kind``; ``None`` when the row has none.

    An attribute of another type is a row no KCL worker writes, not a missing one: a counter
    written as a string read as 0 made every take of the lease fail its condition as if another
    worker held it, and a checkpoint of another type read as none would restart the shard from
    its initial position.
    """
    value = item.get(name)
    if value is None or value == _NULL:  # a NULL member is an absent one, as the KCL reads it
        return None
    if type(value) is not dict or set(value) != {kind}:
        raise _BadMember(f"{name} is not of type {kind}")
    return value[kind]


_NULL = {"NULL": True}


def _lease_from_row(item: dict[str, Any]) -> Lease:
    shard_id = _member(item, LEASE_KEY, "S")
    if type(shard_id) is not str:
        raise TypeError(f"{LEASE_KEY} is missing")
    checkpoint = _member(item, CHECKPOINT, "S")
    initial_position: str | None = None
    if checkpoint in INITIAL_POSITIONS:
        initial_position, checkpoint = checkpoint, None
    elif checkpoint is not None:
        try:
            validate_checkpoint_value(checkpoint, 0)
        except ValidationError as exc:
            raise _BadMember("its checkpoint is no sequence number") from exc
    owner = _member(item, LEASE_OWNER, "S")
    parents = _member(item, PARENT_SHARD_ID, "SS") or []
    sub_sequence = int(_member(item, CHECKPOINT_SUB_SEQUENCE, "N") or "0")
    if sub_sequence < 0:
        raise _BadMember("its checkpoint's sub-sequence number is negative")
    _member(item, OWNER_SWITCHES, "N")  # a take adds to it: of another type, the write fails
    counter = _member(item, LEASE_COUNTER, "N")
    if counter is None:
        # every KCL and Shardline write of a lease carries one; read as 0, the lease looked
        # free or abandoned, and every take failed its condition as if another worker had won
        raise _BadMember(f"{LEASE_COUNTER} is missing")
    if int(counter) not in _KCL_COUNTER_RANGE:
        # no KCL worker reads or writes it (a Java long), and DynamoDB keeps 38 digits: a take
        # adding one to a counter of 10**38 or more was refused as an invalid request, which
        # ended the discovery, and with it the reading of every shard, instead of this one's
        raise _BadMember(f"{LEASE_COUNTER} is out of the KCL's range")
    return Lease(
        shard_id=shard_id,
        owner=owner,
        counter=int(counter),
        checkpoint=checkpoint,
        sub_sequence_number=sub_sequence,
        parent_shard_ids=tuple(sorted(parents)),
        initial_position=initial_position,
    )
