"""A sink whose destination is down for a while (RELIABILITY rows 15 and 21).

A TCP proxy in front of moto stops listening, so every call is refused at the socket; it is
brought back from inside the pipeline's back-off (no wall-clock waits).  The sink is driven
by the pipeline's write workflow, which must not return while the destination is down, must
not read ahead (the caller's next batch is not pulled: memory stays bounded to one batch),
must not dead-letter healthy records, and once the destination is back every record is there
exactly once.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from consumers.sinks.base import BatchingSink, Outcome
from consumers.sinks.deadletter import MemoryDeadLetter
from consumers.sinks.dynamodb import DynamoDBSink
from consumers.sinks.firehose import FirehoseSink
from shardline.errors import SinkError
from shardline.records import ConsumedRecord, KinesisPosition
from shardline.retry import RetryPolicy
from tests.faults.wire_faults import ToggleProxy
from tests.faults.workflow import deliver
from tests.integration.sink_readback import dynamodb_state, s3_objects

pytestmark = pytest.mark.integration

# No retries inside botocore: the pipeline's workflow must carry the outage.
NO_RETRIES = AioConfig(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)


def batches(count: int, size: int) -> list[list[ConsumedRecord]]:
    return [
        [
            ConsumedRecord(
                json.dumps({"device": f"d{n}", "temp": n}).encode(),
                f"d{n}",
                KinesisPosition("telemetry", "shardId-000000000000", str(n)),
            )
            for n in range(b * size + 1, (b + 1) * size + 1)
        ]
        for b in range(count)
    ]


@pytest.fixture
async def proxy(moto_endpoint: str) -> AsyncIterator[ToggleProxy]:
    toggle = ToggleProxy(moto_endpoint)
    await toggle.up()
    yield toggle
    await toggle.down()


@pytest.fixture
async def direct(moto_endpoint: str) -> AsyncIterator[dict[str, Any]]:
    session = get_session()
    async with (
        session.create_client("s3", endpoint_url=moto_endpoint) as s3,
        session.create_client("firehose", endpoint_url=moto_endpoint) as firehose,
        session.create_client("dynamodb", endpoint_url=moto_endpoint) as dynamodb,
    ):
        yield {"s3": s3, "firehose": firehose, "dynamodb": dynamodb}


class Outage:
    """Drives one outage from inside the sink's back-off: up again after ``rounds`` sleeps."""

    def __init__(self, proxy: ToggleProxy, rounds: int) -> None:
        self.proxy = proxy
        self.rounds = rounds
        self.sleeps = 0
        self.pulled_during_outage: int | None = None
        self.pulled = 0
        self.write_returned = False
        self.write_returned_during_outage: bool | None = None

    async def sleep(self, _delay: float) -> None:
        self.sleeps += 1
        if self.sleeps == self.rounds:
            self.pulled_during_outage = self.pulled
            self.write_returned_during_outage = self.write_returned
            await self.proxy.up()

    def source(self, all_batches: list[list[ConsumedRecord]]) -> Iterator[list[ConsumedRecord]]:
        for batch in all_batches:
            self.pulled += 1
            yield batch


async def run_through_outage(
    sink: BatchingSink[Any],
    outage: Outage,
    data: list[list[ConsumedRecord]],
    dead: MemoryDeadLetter,
    *,
    entry_attempts: int = 8,
) -> int:
    """Deliver every batch; return how many records were dead-lettered."""
    await outage.proxy.down()
    dead_lettered = 0
    for batch in outage.source(data):
        outage.write_returned = False
        workflow = await deliver(sink, batch, dead, entry_attempts=entry_attempts, sleep=outage.sleep)
        dead_lettered += workflow.counts.dead_lettered
        outage.write_returned = True
    return dead_lettered


@pytest.mark.parametrize("guarded", [False, True], ids=["batch", "guarded"])
async def test_dynamodb_waits_out_an_outage_and_loses_nothing(
    proxy: ToggleProxy, direct: dict[str, Any], guarded: bool
) -> None:
    table = f"outage-{uuid.uuid4().hex[:12]}"
    await direct["dynamodb"].create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    outage = Outage(proxy, rounds=4)
    dead = MemoryDeadLetter()
    session = get_session()
    async with session.create_client("dynamodb", endpoint_url=proxy.url, config=NO_RETRIES) as client:
        sink = DynamoDBSink(table, client=client, guarded=guarded)
        dead_lettered = await run_through_outage(sink, outage, batches(3, 10), dead, entry_attempts=2)

    assert outage.write_returned_during_outage is False
    assert outage.pulled_during_outage == 1  # reading paused: the next batch was not taken
    assert outage.sleeps == 4
    _, items = await dynamodb_state(direct["dynamodb"], table)
    assert sorted(item["pk"]["S"] for item in items) == sorted(
        f"telemetry/shardId-000000000000/{n}/0" for n in range(1, 31)
    )
    assert not dead.entries and dead_lettered == 0
    assert sink.stats.written == 30


async def test_firehose_waits_out_an_outage_and_delivers_each_record_once(
    proxy: ToggleProxy, direct: dict[str, Any]
) -> None:
    bucket, stream = f"outage-{uuid.uuid4().hex[:12]}", f"outage-{uuid.uuid4().hex[:12]}"
    await direct["s3"].create_bucket(Bucket=bucket)
    await direct["firehose"].create_delivery_stream(
        DeliveryStreamName=stream,
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": "raw/",
        },
    )
    outage = Outage(proxy, rounds=3)
    session = get_session()
    async with session.create_client("firehose", endpoint_url=proxy.url, config=NO_RETRIES) as client:
        sink = FirehoseSink(stream, client=client)
        await run_through_outage(sink, outage, batches(2, 15), MemoryDeadLetter(), entry_attempts=1)

    assert (outage.write_returned_during_outage, outage.pulled_during_outage) == (False, 1)
    bodies = (await s3_objects(direct["s3"], bucket, "raw/")).values()
    lines = [json.loads(line) for body in bodies for line in body.splitlines()]
    payloads = sorted(json.loads(base64.b64decode(line["data"]))["temp"] for line in lines)
    assert payloads == list(range(1, 31))  # refused calls delivered nothing; each record once
    assert sink.stats.calls == 3 + 2


async def test_an_outage_longer_than_the_bound_raises_without_dead_lettering(proxy: ToggleProxy) -> None:
    await proxy.down()
    dead = MemoryDeadLetter()
    session = get_session()
    bounded = RetryPolicy(max_attempts=3, deadline=None, initial_backoff=0.0, max_backoff=0.0)
    async with session.create_client("dynamodb", endpoint_url=proxy.url, config=NO_RETRIES) as client:
        sink = DynamoDBSink("any-table", client=client)
        results = await sink.write(batches(1, 5)[0])
        assert {result.outcome for result in results} == {Outcome.UNAVAILABLE}  # one try, no sleep
        with pytest.raises(SinkError, match="still failing"):
            await deliver(sink, batches(1, 5)[0], dead, retry=bounded)
    assert not dead.entries and sink.stats.written == 0
