"""The job ledger: which plan a checkpoint namespace belongs to, and who runs each slice.

It lives in the job's own lease table (the DynamoDB checkpoint store's table for namespace
``replay-NAME``), beside the KCL-shaped leases of the slices' units, as a few more items:

``leaseKey = "job"``
    the manifest hash of the plan that first ran in this namespace.  :meth:`JobLedger.bind`
    refuses a manifest with another hash (:class:`ManifestMismatchError`): two plans never
    share progress.
``leaseKey = "slice-NNNN"``
    the slice's runner (``host:pid:id``), its heartbeat and lease expiry (wall clock,
    seconds since the epoch), its state (``running``, ``done``, ``failed``), the type and
    message of the error that failed it, and counters (records read, written, skipped as
    duplicates, dead-lettered) added up over every attempt.

Claiming a slice is one conditional write: it succeeds only when no runner holds the slice
or the holder's lease expired (its heartbeat stopped for ``lease_seconds``).  A live holder
makes :meth:`JobLedger.claim` raise :class:`SliceHeldError`.  A runner renews with
:meth:`heartbeat`, conditional on still being the holder, so a runner that stalled past its
lease and was replaced is told so and stops; the unit leases below it are fenced on their
own (``leaseCounter``), so its late checkpoints are refused even before it learns that.
Expiry compares wall clocks of different machines: keep ``lease_seconds`` well above the
clock skew between them (NTP keeps it far below a second).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from consumers.checkpoint.base import INITIAL_POSITIONS
from shardline.errormap import map_aws_errors
from shardline.errors import (
    CheckpointError,
    ConditionalCheckFailedError,
    ConfigurationError,
    LeaseRowError,
)
from shardline.records import SHARD_END
from shardline.retry import RetryPolicy
from shardline.validation import is_decimal

__all__ = [
    "COUNTERS",
    "JobLedger",
    "LedgerView",
    "ManifestMismatchError",
    "SliceHeldError",
    "SliceRow",
    "new_runner_id",
    "slice_key",
]

_T = TypeVar("_T")

JOB_KEY = "job"
SLICE_PREFIX = "slice-"  # with JOB_KEY, the ledger's rows: no unit of a manifest may be named so
COUNTERS = ("read", "written", "duplicates", "dead_lettered")
_RETRY = RetryPolicy(max_attempts=8, initial_backoff=0.05, max_backoff=2.0, deadline=30.0)


class ManifestMismatchError(ConfigurationError):
    """The job's checkpoint namespace belongs to another plan (another manifest hash)."""


class SliceHeldError(CheckpointError):
    """Another runner holds the slice and its lease has not expired."""


def slice_key(index: int) -> str:
    return f"{SLICE_PREFIX}{index:04d}"


def new_runner_id() -> str:
    """``host:pid:random``: unique per runner, and it says where to look for the process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class SliceRow:
    """One slice's ledger item as read."""

    index: int
    state: str | None
    runner: str | None
    heartbeat: float | None
    expires: float | None
    attempts: int
    error: str | None
    counts: dict[str, int]

    def live(self, now: float) -> bool:
        """Held by a runner whose lease has not expired."""
        return self.runner is not None and self.expires is not None and self.expires > now


@dataclass(frozen=True, slots=True)
class LedgerView:
    """Everything in a job's table: the bound plan, slice rows, and unit checkpoints."""

    manifest_hash: str | None
    slices: dict[int, SliceRow]
    checkpoints: dict[str, str | None]


class JobLedger:
    """The ledger items of one job's lease table, written through an aiobotocore DynamoDB client."""

    def __init__(self, client: Any, table_name: str, *, retry: RetryPolicy = _RETRY) -> None:
        self.client = client
        self.table_name = table_name
        self._retry = retry

    def __repr__(self) -> str:
        return f"JobLedger(table_name={self.table_name!r})"

    async def _call(self, operation: Callable[[], Awaitable[_T]]) -> _T:
        async def attempt() -> _T:
            with map_aws_errors("dynamodb"):
                return await operation()

        return await self._retry.call(attempt)

    async def bind(self, manifest_hash: str, name: str, slices: int) -> None:
        """Record the plan's hash on first use; refuse any other plan afterwards."""
        try:
            await self._call(
                lambda: self.client.put_item(
                    TableName=self.table_name,
                    Item={
                        "leaseKey": {"S": JOB_KEY},
                        "manifestHash": {"S": manifest_hash},
                        "jobName": {"S": name},
                        "slices": {"N": str(slices)},
                    },
                    ConditionExpression="attribute_not_exists(leaseKey) OR manifestHash = :hash",
                    ExpressionAttributeValues={":hash": {"S": manifest_hash}},
                )
            )
        except ConditionalCheckFailedError as exc:
            bound = await self.bound_hash()
            raise ManifestMismatchError(
                f"checkpoint table {self.table_name!r} belongs to the plan with manifest hash "
                f"{(bound or '?')[:12]}..., not this manifest's {manifest_hash[:12]}...: one job name "
                "runs one plan (plan again with a new --name, or run the manifest this job was "
                "planned with)"
            ) from exc

    async def bound_hash(self) -> str | None:
        response = await self._call(
            lambda: self.client.get_item(
                TableName=self.table_name, Key={"leaseKey": {"S": JOB_KEY}}, ConsistentRead=True
            )
        )
        item = response.get("Item")
        return None if item is None else _job_hash(item)

    async def claim(self, index: int, runner: str, *, lease_seconds: float, now: float) -> SliceRow:
        """Take the slice unless a live runner holds it (:class:`SliceHeldError`)."""
        try:
            response = await self._call(
                lambda: self.client.update_item(
                    TableName=self.table_name,
                    Key={"leaseKey": {"S": slice_key(index)}},
                    UpdateExpression="SET runner = :runner, heartbeat = :now, expires = :expires, "
                    "#state = :running, attempts = if_not_exists(attempts, :zero) + :one REMOVE #error",
                    ConditionExpression="attribute_not_exists(runner) OR expires < :now",
                    ExpressionAttributeNames={"#state": "state", "#error": "error"},
                    ExpressionAttributeValues={
                        ":runner": {"S": runner},
                        ":now": {"N": _number(now)},
                        ":expires": {"N": _number(now + lease_seconds)},
                        ":running": {"S": "running"},
                        ":zero": {"N": "0"},
                        ":one": {"N": "1"},
                    },
                    ReturnValues="ALL_NEW",
                )
            )
        except ConditionalCheckFailedError as exc:
            row = await self.slice(index)
            holder = row.runner if row is not None else "?"
            left = (row.expires - now) if row is not None and row.expires is not None else 0.0
            raise SliceHeldError(
                f"slice {index} is held by the live runner {holder} (its lease expires in {left:.1f} s "
                "unless it renews): two copies of one slice never run; wait for it to finish, or for "
                "its lease to expire if it died"
            ) from exc
        return _row(index, response["Attributes"])

    async def heartbeat(
        self, index: int, runner: str, *, lease_seconds: float, now: float, counts: dict[str, int]
    ) -> None:
        """Renew the slice's lease and add ``counts``; :class:`SliceHeldError` if it was taken over."""
        await self._owned_update(
            index,
            runner,
            "SET heartbeat = :now, expires = :expires",
            {":now": {"N": _number(now)}, ":expires": {"N": _number(now + lease_seconds)}},
            counts,
        )

    async def finish(
        self,
        index: int,
        runner: str,
        *,
        state: str,
        now: float,
        counts: dict[str, int],
        error: str | None = None,
    ) -> None:
        """Record the outcome (``done`` or ``failed``), add ``counts`` and give the slice up."""
        values: dict[str, Any] = {":now": {"N": _number(now)}, ":state": {"S": state}}
        expression = "SET heartbeat = :now, #state = :state"
        if error is not None:
            expression += ", #error = :error"
            values[":error"] = {"S": error[:500]}
        await self._owned_update(index, runner, expression + " REMOVE runner, expires", values, counts)

    async def _owned_update(
        self, index: int, runner: str, expression: str, values: dict[str, Any], counts: dict[str, int]
    ) -> None:
        additions = {name: count for name, count in counts.items() if count}
        if additions:
            adds = ", ".join(f"#{name} :{name}" for name in additions)
            expression = f"{expression} ADD {adds}"
            values = {**values, **{f":{name}": {"N": str(count)} for name, count in additions.items()}}
        names = {"#state": "state", "#error": "error", **{f"#{name}": name for name in additions}}
        used = {name: attr for name, attr in names.items() if name in expression}
        try:
            await self._call(
                lambda: self.client.update_item(
                    TableName=self.table_name,
                    Key={"leaseKey": {"S": slice_key(index)}},
                    UpdateExpression=expression,
                    ConditionExpression="runner = :me",
                    ExpressionAttributeValues={**values, ":me": {"S": runner}},
                    **({"ExpressionAttributeNames": used} if used else {}),
                )
            )
        except ConditionalCheckFailedError as exc:
            raise SliceHeldError(
                f"slice {index} was taken over by another runner after this one's lease expired"
            ) from exc

    async def slice(self, index: int) -> SliceRow | None:
        response = await self._call(
            lambda: self.client.get_item(
                TableName=self.table_name, Key={"leaseKey": {"S": slice_key(index)}}, ConsistentRead=True
            )
        )
        item = response.get("Item")
        return None if item is None else _row(index, item)

    async def live_slices(self, indices: Sequence[int], now: float) -> int:
        """How many of these slices a live runner holds (for dividing the job's rate caps)."""
        live = 0
        keys = [{"leaseKey": {"S": slice_key(i)}} for i in indices]
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {
                self.table_name: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            while pending:
                request = pending
                response = await self._call(partial(self.client.batch_get_item, RequestItems=request))
                for item in response.get("Responses", {}).get(self.table_name, []):
                    index = int(item["leaseKey"]["S"].removeprefix(SLICE_PREFIX))
                    live += _row(index, item).live(now)
                pending = response.get("UnprocessedKeys") or {}
        return live

    async def view(self) -> LedgerView:
        """Scan the whole table: the bound hash, every slice row, every unit checkpoint."""
        manifest_hash: str | None = None
        slices: dict[int, SliceRow] = {}
        checkpoints: dict[str, str | None] = {}
        start_key: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True}
            if start_key is not None:
                kwargs["ExclusiveStartKey"] = start_key
            response: dict[str, Any] = await self._call(partial(self.client.scan, **kwargs))
            for item in response.get("Items", []):
                key = item["leaseKey"]["S"]
                if key == JOB_KEY:
                    manifest_hash = _job_hash(item)
                elif key.startswith(SLICE_PREFIX):
                    index = _slice_index(key)
                    slices[index] = _row(index, item)
                else:
                    checkpoints[key] = _checkpoint(key, item)
            start_key = response.get("LastEvaluatedKey")
            if not start_key:
                return LedgerView(manifest_hash, slices, checkpoints)


def _number(value: float) -> str:
    return str(Decimal(repr(round(value, 3))))


def _not_a_row(key: str, reason: str) -> LeaseRowError:
    """A ledger item no runner writes (edited by hand, another tool's): named, never a bare
    ``KeyError`` or ``ValueError`` from ``status`` or a runner."""
    return LeaseRowError(
        f"job ledger item {key[:128]!r} is not one a runner writes ({reason}); fix or delete it"
    )


def _job_hash(item: dict[str, Any]) -> str:
    value = item.get("manifestHash", {}).get("S")
    if not isinstance(value, str):
        raise _not_a_row(JOB_KEY, "its manifestHash is not text")
    return value


def _slice_index(key: str) -> int:
    number = key.removeprefix(SLICE_PREFIX)
    if not (number.isascii() and number.isdigit()):
        raise _not_a_row(key, "no slice number follows its prefix")
    return int(number)


def _checkpoint(key: str, item: dict[str, Any]) -> str | None:
    """A unit's checkpoint, ``None`` before its first one (a new lease holds the KCL's initial
    position, ``TRIM_HORIZON``, which ``status`` took for a Kafka offset and failed on)."""
    value: object = item.get("checkpoint", {}).get("S")
    if value is None or value in INITIAL_POSITIONS:
        return None
    if isinstance(value, str) and (value == SHARD_END or is_decimal(value)):
        return value
    raise _not_a_row(key, "its checkpoint is no sequence number")


def _row(index: int, item: dict[str, Any]) -> SliceRow:
    def number(name: str) -> float | None:
        value = item.get(name, {}).get("N")
        return None if value is None else float(value)

    def whole(name: str) -> int:
        return int(item.get(name, {}).get("N", "0"))

    def text(name: str) -> str | None:
        value = item.get(name, {}).get("S")
        return value if isinstance(value, str) else None

    try:
        return SliceRow(
            index=index,
            state=text("state"),
            runner=text("runner"),
            heartbeat=number("heartbeat"),
            expires=number("expires"),
            attempts=whole("attempts"),
            error=text("error"),
            counts={name: whole(name) for name in COUNTERS},
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise _not_a_row(slice_key(index), f"a member that does not parse ({type(exc).__name__})") from None
