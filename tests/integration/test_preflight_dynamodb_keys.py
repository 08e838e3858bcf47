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


async def _table(endpoint: str, *keys: str, kind: str = "S") -> str:
    name = f"keys-{uuid.uuid4().hex[:12]}"
    schema: list[dict[str, Any]] = [{"AttributeName": keys[0], "KeyType": "HASH"}]
    schema += [{"AttributeName": key, "KeyType": "RANGE"} for key in keys[1:]]
    async with get_session().create_client("dynamodb", endpoint_url=endpoint) as client:
        await client.create_table(
            TableName=name,
            KeySchema=schema,
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": kind} for key in keys],
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


@pytest.mark.parametrize(("kind", "name"), [("N", "number"), ("B", "binary")])
async def test_a_table_keying_the_record_identity_by_another_type_than_text_is_refused_at_start(
    moto_endpoint: str, kind: str, name: str
) -> None:
    # the identity is text: DynamoDB refused every item ("Type mismatch for key"), and each
    # was bisected out and dead-lettered while the checkpoints moved on
    table = await _table(moto_endpoint, "pk", kind=kind)
    check = sink_check(f"dynamodb://{table}?endpoint_url={moto_endpoint}")
    assert check is not None
    with pytest.raises(ConfigurationError, match=f"table '{table}' keys 'pk' by {name}"):
        await run_checks([check])


async def test_a_number_key_taken_from_the_payload_passes(moto_endpoint: str) -> None:
    table = await _table(moto_endpoint, "device", kind="N")
    check = sink_check(f"dynamodb://{table}?endpoint_url={moto_endpoint}&key=device")
    assert check is not None
    await run_checks([check])
