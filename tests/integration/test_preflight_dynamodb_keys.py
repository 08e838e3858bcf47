"""The consumer's start-up check of a DynamoDB sink table, over moto's wire: a table keyed by
other attributes than the sink's items carry is refused before anything is read.

DynamoDB refuses every item that lacks the table's key, the same for every record, so such a
run bisected each batch down to single records and dead-lettered the whole stream while its
checkpoints moved on."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiobotocore.session import get_session

from consumers.preflight import run_checks, sink_check
from shardline.errors import ConfigurationError

pytestmark = pytest.mark.integration


async def _table(endpoint: str, *keys: str) -> str:
    name = f"keys-{uuid.uuid4().hex[:12]}"
    schema: list[dict[str, Any]] = [{"AttributeName": keys[0], "KeyType": "HASH"}]
    schema += [{"AttributeName": key, "KeyType": "RANGE"} for key in keys[1:]]
    async with get_session().create_client("dynamodb", endpoint_url=endpoint) as client:
        await client.create_table(
            TableName=name,
            KeySchema=schema,
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"} for key in keys],
            BillingMode="PAY_PER_REQUEST",
        )
    return name


@pytest.mark.parametrize(
    ("table_keys", "query"),
    [
        (("id",), ""),  # the record identity goes to pk by default
        (("device",), "&key_attribute=pk"),
        (("device", "ts"), "&key=device"),  # the sort key missing from the items
        (("device",), "&key=device,ts"),  # an attribute the table does not key by
    ],
)
async def test_a_table_keyed_otherwise_than_the_sinks_items_is_refused_at_start(
    moto_endpoint: str, table_keys: tuple[str, ...], query: str
) -> None:
    table = await _table(moto_endpoint, *table_keys)
    check = sink_check(f"dynamodb://{table}?endpoint_url={moto_endpoint}{query}")
    assert check is not None
    with pytest.raises(ConfigurationError, match=f"table '{table}' is keyed by {', '.join(table_keys)}"):
        await run_checks([check])


@pytest.mark.parametrize(
    ("table_keys", "query"),
    [(("pk",), ""), (("id",), "&key_attribute=id"), (("device", "ts"), "&key=ts,device")],
)
async def test_a_table_keyed_as_the_sinks_items_passes(
    moto_endpoint: str, table_keys: tuple[str, ...], query: str
) -> None:
    table = await _table(moto_endpoint, *table_keys)
    check = sink_check(f"dynamodb://{table}?endpoint_url={moto_endpoint}{query}")
    assert check is not None
    await run_checks([check])
