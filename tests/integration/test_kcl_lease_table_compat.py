"""A lease table written by the Java KCL (2.x or 3.x) is resumed by Shardline, and the other way round.

Over moto's DynamoDB wire.  The KCL side is :mod:`kcl_lease_refresher`: the requests the KCL's
``DynamoDBLeaseRefresher`` sends and the reading ``DynamoDBLeaseSerializer.fromDynamoRecord``
does.  The starting tables are vendored items in the Java serializer's shape
(tests/fixtures/kcl, origin noted in its README).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consumers.checkpoint.dynamodb import DynamoDBCheckpointStore
from consumers.kinesis.lineage import resume_position
from consumers.kinesis.positions import AT_SEQUENCE_NUMBER, AT_TIMESTAMP, LATEST, TRIM_HORIZON
from shardline.clients import boto3_client
from shardline.records import SHARD_END
from tests.integration.kcl_lease_refresher import KclLeaseRefresher, kcl_read

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent.parent / "fixtures" / "kcl"
SEQ_1 = "49590338271490256608559692538361571095921575989136588898"
SEQ_2 = "49590338271490256608559692540925702759324208523137515618"


@pytest.fixture
def table(moto_endpoint: str) -> Iterator[tuple[Any, str]]:
    client = boto3_client("dynamodb", endpoint_url=moto_endpoint)
    name = f"kcl-app-{uuid.uuid4().hex[:10]}"
    # the KCL's schema: DynamoDBLeaseSerializer.getKeySchema / getAttributeDefinitions
    client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield client, name
    client.delete_table(TableName=name)


@pytest.fixture
async def store(table: tuple[Any, str], moto_endpoint: str) -> AsyncIterator[DynamoDBCheckpointStore]:
    opened = DynamoDBCheckpointStore(table[1], endpoint_url=moto_endpoint)
    yield opened
    await opened.close()


def _load(client: Any, name: str, fixture: str) -> dict[str, dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((FIXTURES / fixture).read_text())
    for item in items:
        client.put_item(TableName=name, Item=item)
    return {item["leaseKey"]["S"]: item for item in items}


def _item(client: Any, name: str, key: str) -> dict[str, Any]:
    item: dict[str, Any] = client.get_item(TableName=name, Key={"leaseKey": {"S": key}}, ConsistentRead=True)[
        "Item"
    ]
    return item


# --- KCL -> Shardline ---------------------------------------------------------------------------


async def test_kcl2_table_reads_with_sentinels_and_starts_each_shard_where_the_kcl_would(
    table: tuple[Any, str], store: DynamoDBCheckpointStore
) -> None:
    _load(*table, "kcl2_lease_table.json")
    leases = {lease.shard_id: lease for lease in await store.list()}
    assert sorted(leases) == [f"shardId-00000000000{n}" for n in range(5)]
    assert leases["shardId-000000000000"].is_shard_end
    assert (
        leases["shardId-000000000001"].checkpoint,
        leases["shardId-000000000001"].sub_sequence_number,
    ) == (
        SEQ_1,
        3,
    )
    assert [
        (leases[f"shardId-00000000000{n}"].checkpoint, leases[f"shardId-00000000000{n}"].initial_position)
        for n in (2, 3, 4)
    ] == [(None, "TRIM_HORIZON"), (None, "LATEST"), (None, "AT_TIMESTAMP")]
    assert leases["shardId-000000000002"].parent_shard_ids == ("shardId-000000000000",)

    # the consumer's own start (fallback) does not override what the lease says
    since = datetime(2026, 12, 1, tzinfo=UTC)
    assert resume_position(leases["shardId-000000000001"], LATEST) == AT_SEQUENCE_NUMBER(
        SEQ_1, skip_through_sub_sequence=3
    )
    assert resume_position(leases["shardId-000000000002"], LATEST) == TRIM_HORIZON
    assert resume_position(leases["shardId-000000000003"], TRIM_HORIZON) == LATEST
    # the KCL keeps no timestamp in the lease: AT_TIMESTAMP uses the configured one, else TRIM_HORIZON
    assert resume_position(leases["shardId-000000000004"], AT_TIMESTAMP(since)) == AT_TIMESTAMP(since)
    assert resume_position(leases["shardId-000000000004"], LATEST) == TRIM_HORIZON


async def test_taking_and_checkpointing_a_kcl2_lease_moves_the_counters_as_the_kcl_does(
    table: tuple[Any, str], store: DynamoDBCheckpointStore
) -> None:
    client, name = table
    before = _load(client, name, "kcl2_lease_table.json")

    # a lease another worker held: one owner switch, counter + 1
    taken = await store.acquire("shardId-000000000001", "shardline-a")
    row = _item(client, name, "shardId-000000000001")
    assert (row["leaseCounter"]["N"], row["ownerSwitchesSinceCheckpoint"]["N"]) == ("878", "3")
    # a first take of an unowned lease leaves ownerSwitchesSinceCheckpoint at 0
    await store.acquire("shardId-000000000002", "shardline-a")
    row = _item(client, name, "shardId-000000000002")
    assert (row["leaseCounter"]["N"], row["ownerSwitchesSinceCheckpoint"]["N"]) == ("1", "0")
    # re-taking our own lease is no switch either
    again = await store.acquire("shardId-000000000001", "shardline-a")
    assert _item(client, name, "shardId-000000000001")["ownerSwitchesSinceCheckpoint"]["N"] == "3"
    assert again.counter == taken.counter + 1

    checkpointed = await store.checkpoint(again, SEQ_2, 0)
    row = _item(client, name, "shardId-000000000001")
    assert checkpointed.counter == again.counter + 1 == int(row["leaseCounter"]["N"])
    assert (row["checkpoint"]["S"], row["checkpointSubSequenceNumber"]["N"]) == (SEQ_2, "0")
    assert row["ownerSwitchesSinceCheckpoint"]["N"] == "0"
    assert "pendingCheckpoint" not in row and "pendingCheckpointSubSequenceNumber" not in row
    # attributes Shardline does not model are kept
    for attribute in ("startingHashKey", "endingHashKey"):
        assert row[attribute] == before["shardId-000000000001"][attribute]

    await store.release(checkpointed)
    row = _item(client, name, "shardId-000000000001")
    assert "leaseOwner" not in row
    assert int(row["leaseCounter"]["N"]) == checkpointed.counter + 1
    # and the KCL resumes it: it reads the row and takes it without a conflict
    kcl = KclLeaseRefresher(client, name)
    resumed = kcl.get("shardId-000000000001")
    assert resumed is not None and (resumed.checkpoint, resumed.sub_sequence) == (SEQ_2, 0)
    assert kcl.take_lease(resumed, "kcl-worker-1")
    kcl_lease = kcl.get("shardId-000000000001")
    assert kcl_lease is not None and (kcl_lease.owner, kcl_lease.owner_switches) == ("kcl-worker-1", 0)


async def test_kcl3_table_lists_only_leases_and_keeps_unknown_attributes(
    table: tuple[Any, str], store: DynamoDBCheckpointStore
) -> None:
    client, name = table
    before = _load(client, name, "kcl3_lease_table.json")
    assert [lease.shard_id for lease in await store.list()] == [
        "shardId-000000000000",
        "shardId-000000000001",
        "shardId-000000000002",
    ]
    for not_a_lease in ("Leader", "Migration3.0", "TableMigration3.5", "worker-7f3a"):
        assert await store.get(not_a_lease) is None

    lease = await store.acquire("shardId-000000000000", "shardline-a")
    lease = await store.checkpoint(lease, SEQ_2, 4)
    await store.renew(lease)
    row = _item(client, name, "shardId-000000000000")
    assert row["throughputKBps"] == before["shardId-000000000000"]["throughputKBps"]
    assert row["entityType"] == {"S": "LEASE"}
    assert row["endingHashKey"] == before["shardId-000000000000"]["endingHashKey"]
    # the other entities are untouched
    for key in ("Leader", "Migration3.0", "TableMigration3.5", "worker-7f3a"):
        assert _item(client, name, key) == before[key]


async def test_taking_a_lease_in_graceful_handoff_clears_checkpoint_owner(
    table: tuple[Any, str], store: DynamoDBCheckpointStore
) -> None:
    client, name = table
    _load(client, name, "kcl3_lease_table.json")
    lease = await store.acquire("shardId-000000000002", "shardline-a")
    row = _item(client, name, "shardId-000000000002")
    assert "checkpointOwner" not in row
    assert (row["leaseOwner"]["S"], row["leaseCounter"]["N"], row["ownerSwitchesSinceCheckpoint"]["N"]) == (
        "shardline-a",
        "32",
        "1",
    )
    assert lease.counter == 32


# --- Shardline -> KCL ---------------------------------------------------------------------------


async def test_leases_shardline_creates_are_the_java_serializers_shape_and_the_kcl_resumes_them(
    table: tuple[Any, str], store: DynamoDBCheckpointStore
) -> None:
    client, name = table
    await store.create_if_absent("shardId-000000000000")
    await store.create_if_absent("shardId-000000000001", initial_position="LATEST")
    await store.create_if_absent("shardId-000000000002", initial_position="AT_TIMESTAMP")
    await store.create_if_absent(
        "shardId-000000000003",
        ["shardId-000000000000", "shardId-000000000001"],
        initial_position="TRIM_HORIZON",
    )
    # exactly what the KCL writes for a new lease (createLeaseIfNotExists of newKCLLease)
    kcl = KclLeaseRefresher(client, name)
    assert kcl.create_lease_if_not_exists("shardId-000000000009", "TRIM_HORIZON")
    assert _item(client, name, "shardId-000000000000") == {
        **_item(client, name, "shardId-000000000009"),
        "leaseKey": {"S": "shardId-000000000000"},
    }
    # the KCL cannot create over ours, and reads every one of them
    assert not kcl.create_lease_if_not_exists("shardId-000000000000", "LATEST")
    leases = {lease.lease_key: lease for lease in kcl.list_leases()}
    assert {key: lease.checkpoint for key, lease in leases.items()} == {
        "shardId-000000000000": "TRIM_HORIZON",
        "shardId-000000000001": "LATEST",
        "shardId-000000000002": "AT_TIMESTAMP",
        "shardId-000000000003": "TRIM_HORIZON",
        "shardId-000000000009": "TRIM_HORIZON",
    }
    assert leases["shardId-000000000003"].parents == {"shardId-000000000000", "shardId-000000000001"}

    # Shardline works a shard, then stops; a KCL worker takes over from the checkpoint
    lease = await store.acquire("shardId-000000000000", "shardline-a")
    lease = await store.checkpoint(lease, SEQ_1, 2)
    lease = await store.checkpoint(lease, SHARD_END)
    await store.release(lease)
    finished = kcl.get("shardId-000000000000")
    assert finished is not None and (finished.checkpoint, finished.owner, finished.owner_switches) == (
        "SHARD_END",
        None,
        0,
    )
    assert kcl.take_lease(finished, "kcl-worker-1")
    # a KCL worker that still believes it holds a lease Shardline took is fenced out
    stale = kcl.get("shardId-000000000001")
    assert stale is not None
    assert kcl.take_lease(stale, "kcl-worker-1")
    stale = kcl.get("shardId-000000000001")
    assert stale is not None
    await store.acquire("shardId-000000000001", "shardline-b")
    assert not kcl.checkpoint(stale, SEQ_1, 0)
    row = kcl.get("shardId-000000000001")
    assert row is not None and (row.owner, row.owner_switches, row.checkpoint) == ("shardline-b", 1, "LATEST")


async def test_kcl_checkpoints_and_evictions_are_resumed_by_shardline(
    table: tuple[Any, str], store: DynamoDBCheckpointStore
) -> None:
    client, name = table
    kcl = KclLeaseRefresher(client, name)
    kcl.create_lease_if_not_exists("shardId-000000000000", "TRIM_HORIZON")
    lease = kcl.get("shardId-000000000000")
    assert lease is not None and kcl.take_lease(lease, "kcl-worker-1")
    lease = kcl.get("shardId-000000000000")
    assert lease is not None and kcl.checkpoint(lease, SEQ_1, 7)
    lease = kcl.get("shardId-000000000000")
    assert lease is not None and kcl.evict_lease(lease)

    resumed = await store.get("shardId-000000000000")
    assert resumed is not None
    assert (resumed.owner, resumed.checkpoint, resumed.sub_sequence_number) == (None, SEQ_1, 7)
    assert resume_position(resumed, TRIM_HORIZON) == AT_SEQUENCE_NUMBER(SEQ_1, skip_through_sub_sequence=7)
    taken = await store.acquire("shardId-000000000000", "shardline-a")
    assert taken.counter == lease.counter + 2  # the KCL's eviction bumped it once, our take once more
    assert kcl_read(_item(client, name, "shardId-000000000000")) is not None


# --- a Shardline consumer on a KCL table, end to end -----------------------------------------


async def test_a_shardline_consumer_resumes_a_kcl3_table_where_the_kcl_left_off(
    table: tuple[Any, str], store: DynamoDBCheckpointStore, kinesis_endpoint: str
) -> None:
    """Before, a KCL-created lease holding TRIM_HORIZON made the whole consumer fail; now every
    shard starts where the KCL would have started it, and the rows stay readable by the KCL."""
    import asyncio

    from consumers.kinesis import KinesisSource
    from tests.integration.test_kinesis_readers import async_client, create_stream, put, sync_client
    from tests.integration.test_kinesis_source import CONFIG, Consumer

    client, name = table
    kinesis = sync_client(kinesis_endpoint)
    stream = create_stream(kinesis, 2)
    results = put(kinesis, stream, [(f"key-{n}", f"r{n}".encode()) for n in range(40)])
    by_shard: dict[str, list[tuple[str, bytes]]] = {}
    for n, result in enumerate(results):
        by_shard.setdefault(result["ShardId"], []).append((result["SequenceNumber"], f"r{n}".encode()))
    checkpointed, fresh = sorted(by_shard)
    assert len(by_shard[checkpointed]) >= 3 and by_shard[fresh]
    # the KCL processed three records of one shard and never reached the other
    kcl_items = json.loads((FIXTURES / "kcl3_lease_table.json").read_text())
    template = kcl_items[0]
    for item in kcl_items[3:]:  # leader lock, migration states, worker metrics
        client.put_item(TableName=name, Item=item)
    client.put_item(
        TableName=name,
        Item={**template, "leaseKey": {"S": checkpointed}, "checkpoint": {"S": by_shard[checkpointed][2][0]}},
    )
    client.put_item(
        TableName=name,
        Item={**kcl_items[1], "leaseKey": {"S": fresh}},
    )

    async with async_client(kinesis_endpoint) as aclient:
        # the KCL worker stopped without releasing its lease: it is taken once its counter
        # stood still for three renewal intervals (0.6 s here instead of 30 s)
        config = replace(CONFIG, lease_renew_interval=0.2)
        source = KinesisSource(stream, store=store, owner="shardline-1", client=aclient, config=config)
        consumer = Consumer(source)
        running = asyncio.create_task(consumer.run())
        expected = len(by_shard[checkpointed]) - 3 + len(by_shard[fresh])
        await consumer.wait_for(lambda: len(consumer.records) >= expected, timeout=60)
        await source.close()
        await asyncio.wait_for(running, 30)
    assert sorted(data for _, data, _ in consumer.records) == sorted(
        data for data in (d for _, d in by_shard[checkpointed][3:] + by_shard[fresh])
    )
    kcl = KclLeaseRefresher(client, name)
    resumed = {lease.lease_key: lease for lease in kcl.list_leases()}
    assert set(resumed) == {checkpointed, fresh}
    assert resumed[fresh].checkpoint == by_shard[fresh][-1][0]
    assert all(lease.owner is None for lease in resumed.values())


async def test_a_lease_an_earlier_shardline_wrote_without_checkpoint_gets_the_sentinel(
    table: tuple[Any, str], store: DynamoDBCheckpointStore
) -> None:
    client, name = table
    legacy = {
        "leaseKey": {"S": "shardId-000000000000"},
        "leaseCounter": {"N": "3"},
        "ownerSwitchesSinceCheckpoint": {"N": "0"},
    }
    client.put_item(TableName=name, Item=legacy)
    with pytest.raises(ValueError, match="no checkpoint"):
        kcl_read(_item(client, name, "shardId-000000000000"))
    await store.create_if_absent("shardId-000000000000", initial_position="LATEST")
    assert _item(client, name, "shardId-000000000000") == {
        **legacy,
        "checkpoint": {"S": "LATEST"},
        "checkpointSubSequenceNumber": {"N": "0"},
    }
    # progress is never overwritten
    lease = await store.acquire("shardId-000000000000", "shardline-a")
    await store.checkpoint(lease, SEQ_1, 1)
    await store.create_if_absent("shardId-000000000000", initial_position="TRIM_HORIZON")
    row = kcl_read(_item(client, name, "shardId-000000000000"))
    assert row is not None and (row.checkpoint, row.sub_sequence) == (SEQ_1, 1)
