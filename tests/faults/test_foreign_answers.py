"""200 answers that are not Kinesis responses (RELIABILITY: untrusted bytes from the service).

A wrong endpoint, a captive portal or a misbehaving proxy can answer a call with 200 and an
HTML page; botocore parses that into a response with none of the operation's members.  The
gateway injects such answers in front of kinesis-mock (``FaultPlan.foreign_answer_rate``), so
the whole path is real: HTTP, botocore's parsing, Shardline's parsers and the readers and the
producer above them.  A reader must not take such an answer for the shard's end (the source
would checkpoint SHARD_END for an open shard and never read it again), and the producer must
retry the entries it carried, not die.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from benchmarks.gateway import FaultPlan, KinesisGateway, ShardLimits
from consumers.kinesis import PollingShardReader, ReaderConfig
from consumers.kinesis.session import reader_session
from consumers.replay.kinesis_range import KinesisRange, KinesisRangeReader
from consumers.replay.plan import plan_kinesis
from producers import KinesisProducer
from shardline.errors import TransientServiceError
from shardline.records import Record
from tests.faults.test_kinesis_readers_faults import RecordingSleep, read_all, seq, single_shard_stream
from tests.integration.kinesis_producer_readback import assert_each_once_on_its_shard, create_stream

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

GET_RECORDS = frozenset({"GetRecords"})
PUT_RECORDS = frozenset({"PutRecords"})


@pytest.fixture
async def gateway(kinesis_endpoint: str) -> AsyncIterator[KinesisGateway]:
    async with KinesisGateway(kinesis_endpoint, limits=ShardLimits.unenforced()) as gw:
        yield gw


async def test_a_reader_answered_only_foreign_pages_raises_instead_of_ending_the_shard(
    kinesis_endpoint: str, gateway: KinesisGateway
) -> None:
    stream, shard_id, _ = await asyncio.to_thread(single_shard_stream, kinesis_endpoint, 20)
    gateway.set_faults(FaultPlan(foreign_answer_rate=1.0, operations=GET_RECORDS))
    sleep = RecordingSleep()
    batches: list[Any] = []
    async with reader_session().create_client("kinesis", endpoint_url=gateway.endpoint) as client:
        reader = PollingShardReader(client, stream, shard_id, config=ReaderConfig(), sleep=sleep)
        with pytest.raises(TransientServiceError, match="record list"):
            async for batch in reader:
                batches.append(batch)
    assert batches == []  # no batch, and above all no end-of-shard batch
    answered = gateway.stats().foreign_answers
    assert answered == ReaderConfig().max_transient_retries + 1  # retried a bounded number of times


async def test_a_reader_reads_every_record_through_occasional_foreign_pages(
    kinesis_endpoint: str, gateway: KinesisGateway
) -> None:
    stream, shard_id, sequences = await asyncio.to_thread(single_shard_stream, kinesis_endpoint, 200)
    gateway.set_faults(FaultPlan(foreign_answer_rate=0.3, operations=GET_RECORDS, seed=11))
    async with reader_session().create_client("kinesis", endpoint_url=gateway.endpoint) as client:
        reader = PollingShardReader(
            client,
            stream,
            shard_id,
            config=ReaderConfig(get_records_limit=20, max_transient_retries=50),
            stop_at_tip=True,
            sleep=RecordingSleep(),
        )
        records = await asyncio.wait_for(read_all(reader), 60)
    assert gateway.stats().foreign_answers > 0
    assert [seq(r) for r in records] == sequences


async def test_a_producer_answered_foreign_pages_resends_and_writes_each_record_once(
    kinesis_endpoint: str, gateway: KinesisGateway
) -> None:
    admin = boto3.client("kinesis", endpoint_url=kinesis_endpoint)
    stream = await asyncio.to_thread(create_stream, admin, 2, "foreign")
    gateway.set_faults(FaultPlan(foreign_answer_rate=0.3, operations=PUT_RECORDS, seed=4))
    records = [Record(b"r%05d" % i, partition_key=f"key-{i % 20}") for i in range(600)]
    async with KinesisProducer(
        stream,
        endpoint_url=gateway.endpoint,
        linger=0.005,
        aggregate=False,
        max_attempts=30,
        initial_backoff=0.005,
        max_backoff=0.05,
        rate_limit_percent=None,
    ) as producer:
        tickets = [await producer.send_many(records[i : i + 50]) for i in range(0, len(records), 50)]
        assert all([(await ticket).ok for ticket in tickets])
    assert gateway.stats().foreign_answers > 0
    # a foreign answer never reached the stream: nothing was written twice
    await asyncio.to_thread(assert_each_once_on_its_shard, admin, stream, records)


async def test_a_foreign_page_for_an_iterator_is_retried_then_raised(
    kinesis_endpoint: str, gateway: KinesisGateway
) -> None:
    stream, shard_id, sequences = await asyncio.to_thread(single_shard_stream, kinesis_endpoint, 20)
    gateway.set_faults(FaultPlan(foreign_answer_rate=1.0, operations=frozenset({"GetShardIterator"})))
    async with reader_session().create_client("kinesis", endpoint_url=gateway.endpoint) as client:
        reader = PollingShardReader(client, stream, shard_id, sleep=RecordingSleep())
        with pytest.raises(TransientServiceError, match="iterator"):
            await read_all(reader)
        refused = gateway.stats().foreign_answers
        # the first draw of seed 1 is a foreign page, the next one is not
        gateway.set_faults(
            FaultPlan(foreign_answer_rate=0.5, operations=frozenset({"GetShardIterator"}), seed=1)
        )
        reader = PollingShardReader(client, stream, shard_id, stop_at_tip=True, sleep=RecordingSleep())
        records = await asyncio.wait_for(read_all(reader), 60)
    assert gateway.stats().foreign_answers == refused + 1
    assert [seq(r) for r in records] == sequences


async def test_a_replay_over_a_foreign_shard_list_raises_instead_of_reading_nothing(
    kinesis_endpoint: str, gateway: KinesisGateway
) -> None:
    stream, _, _ = await asyncio.to_thread(single_shard_stream, kinesis_endpoint, 5)
    gateway.set_faults(FaultPlan(foreign_answer_rate=1.0, operations=frozenset({"ListShards"})))
    now = datetime.now(UTC)
    async with reader_session().create_client("kinesis", endpoint_url=gateway.endpoint) as client:
        reader = KinesisRangeReader(client, stream, KinesisRange())
        with pytest.raises(TransientServiceError, match="shard list"):
            await reader.partitions()  # it used to find no shard, and the job read nothing
        with pytest.raises(TransientServiceError, match="shard list"):
            await plan_kinesis(client, stream, now - timedelta(hours=1), now, 2)
    assert gateway.stats().foreign_answers == 2
