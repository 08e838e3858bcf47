"""Lease-table rows another writer crafted, over moto's DynamoDB wire: one no KCL or Shardline
worker writes is a LeaseRowError naming its shard, left out of the listing, and never written.

Before, a row without ``leaseCounter`` was listed as a lease nobody held (counter 0), and every
take of it failed its condition as a LeaseLostError, which the source takes for another
worker's win: the shard was silently never read.  A checkpoint of more than 128 digits was
listed as progress, and planning the shard's start from it ended the whole consumer with a
ValidationError.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from consumers.checkpoint.dynamodb import DynamoDBCheckpointStore
from shardline.clients import boto3_client
from shardline.errors import LeaseRowError

pytestmark = pytest.mark.integration

GOOD = "shardId-000000000000"
CRAFTED = "shardId-000000000001"
KCL_ROW = {  # DynamoDBLeaseSerializer.toDynamoRecord of a lease a KCL worker holds
    "leaseCounter": {"N": "7"},
    "leaseOwner": {"S": "kcl-worker-1"},
    "ownerSwitchesSinceCheckpoint": {"N": "0"},
    "checkpoint": {"S": "49590338271490256608559692538361571095921575989136588898"},
    "checkpointSubSequenceNumber": {"N": "0"},
}


@pytest.fixture
def table(moto_endpoint: str) -> Iterator[tuple[Any, str]]:
    client = boto3_client("dynamodb", endpoint_url=moto_endpoint)
    name = f"crafted-{uuid.uuid4().hex[:10]}"
    client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.put_item(TableName=name, Item={"leaseKey": {"S": GOOD}, **KCL_ROW})
    yield client, name
    client.delete_table(TableName=name)


@pytest.fixture
async def store(table: tuple[Any, str], moto_endpoint: str) -> AsyncIterator[DynamoDBCheckpointStore]:
    opened = DynamoDBCheckpointStore(table[1], endpoint_url=moto_endpoint)
    yield opened
    await opened.close()


def _row(client: Any, name: str, key: str) -> dict[str, Any]:
    item: dict[str, Any] = client.get_item(TableName=name, Key={"leaseKey": {"S": key}}, ConsistentRead=True)[
        "Item"
    ]
    return item


@pytest.mark.parametrize(
    "crafted",
    [
        pytest.param({k: v for k, v in KCL_ROW.items() if k != "leaseCounter"}, id="no-counter"),
        pytest.param({**KCL_ROW, "leaseCounter": {"NULL": True}}, id="null-counter"),
        pytest.param({**KCL_ROW, "checkpoint": {"S": "9" * 129}}, id="checkpoint-of-129-digits"),
        # past a Java long; DynamoDB itself refuses to add one to it (38 digits), and that
        # invalid request ended the whole source
        pytest.param({**KCL_ROW, "leaseCounter": {"N": "1" + "0" * 40}}, id="counter-past-the-kcl-range"),
    ],
)
async def test_a_crafted_row_is_a_lease_row_error_naming_its_shard_and_is_never_written(
    table: tuple[Any, str],
    store: DynamoDBCheckpointStore,
    crafted: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, name = table
    item = {"leaseKey": {"S": CRAFTED}, **crafted}
    client.put_item(TableName=name, Item=item)

    with caplog.at_level(logging.WARNING):
        listed = await store.list()
    assert [lease.shard_id for lease in listed] == [GOOD]
    assert CRAFTED in caplog.text
    with pytest.raises(LeaseRowError, match=CRAFTED) as refused:  # before: LeaseLostError, or taken
        await store.acquire(CRAFTED, "shardline-a")
    assert "9" * 129 not in str(refused.value)  # the shard is named, not the value
    with pytest.raises(LeaseRowError, match=CRAFTED):
        await store.get(CRAFTED)
    await store.create_if_absent(CRAFTED)  # the discovery creates it first: a no-op
    assert _row(client, name, CRAFTED) == item
    # the good lease is taken as ever
    assert (await store.acquire(GOOD, "shardline-a")).counter == 8
