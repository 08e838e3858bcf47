"""Creating the lease table: a table that never becomes ACTIVE is a typed error.

The store waited for the new table with botocore's ``table_exists`` waiter outside the error
boundary, so a waiter that gave up raised a bare ``botocore.exceptions.WaiterError`` from
the store's first call, outside the error tree that ``shardline consume`` reports."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError

from consumers.checkpoint.dynamodb import DynamoDBCheckpointStore
from shardline.errors import ShardlineError


class _GivingUpWaiter:
    async def wait(self, **kwargs: Any) -> None:
        raise WaiterError(name="TableExists", reason="Max attempts exceeded", last_response={})


class _NewTableClient:
    """A DynamoDB client double on which the table is missing and never becomes ACTIVE."""

    def __init__(self) -> None:
        self.created: list[str] = []

    async def describe_table(self, **kwargs: Any) -> dict[str, Any]:
        raise ClientError(
            {"Error": {"Code": "ResourceNotFoundException", "Message": "not found"}}, "DescribeTable"
        )

    async def create_table(self, **kwargs: Any) -> dict[str, Any]:
        self.created.append(kwargs["TableName"])
        return {}

    def get_waiter(self, name: str) -> _GivingUpWaiter:
        assert name == "table_exists"
        return _GivingUpWaiter()


async def test_a_table_that_never_becomes_active_is_a_shardline_error() -> None:
    client = _NewTableClient()
    store = DynamoDBCheckpointStore("leases", client=client, create_table=True)

    with pytest.raises(ShardlineError) as raised:
        await store.get("shardId-000000000000")

    assert client.created == ["leases"]
    assert isinstance(raised.value.__cause__, WaiterError)
    await store.close()
