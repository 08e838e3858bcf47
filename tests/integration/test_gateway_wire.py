"""The Kinesis gateway over the real wire, in front of moto's Kinesis server.

Limits are checked with a :class:`ManualClock`, so the results do not depend on how fast
this machine is: within one tick of the clock the budget is exactly one second's worth.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from benchmarks.gateway import FaultPlan, KinesisGateway, ManualClock, ShardLimits
from shardline.shardmath import ShardMap

pytestmark = pytest.mark.integration

NO_RETRIES = Config(retries={"total_max_attempts": 1}, region_name="us-east-1")


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """moto's Kinesis: the shared local-stack fixture when present, else an in-process server."""
    try:
        yield str(request.getfixturevalue("moto_endpoint"))
        return
    except pytest.FixtureLookupError:
        pass
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def gateway(backend: str, clock: ManualClock) -> AsyncIterator[KinesisGateway]:
    async with KinesisGateway(backend, clock=clock) as gw:
        yield gw


@pytest.fixture
async def kinesis(gateway: KinesisGateway, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    async with get_session().create_client(
        "kinesis", endpoint_url=gateway.endpoint, config=NO_RETRIES
    ) as client:
        yield client


async def new_stream(client: Any, shards: int) -> tuple[str, ShardMap]:
    name = f"gw-{uuid.uuid4().hex[:12]}"
    await client.create_stream(StreamName=name, ShardCount=shards)
    await client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})
    listed = await client.list_shards(StreamName=name)
    return name, ShardMap.from_api(listed["Shards"])


def keys_by_shard(shard_map: ShardMap, count: int = 400) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for n in range(count):
        key = f"device-{n}"
        found.setdefault(shard_map.shard_for_key(key).shard_id, []).append(key)
    return found


async def read_all(client: Any, stream: str, shard_id: str) -> list[dict[str, Any]]:
    iterator = (
        await client.get_shard_iterator(StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")
    )["ShardIterator"]
    response = await client.get_records(ShardIterator=iterator, Limit=10_000)
    return list(response["Records"])


async def test_single_hot_key_is_throttled_and_the_other_shards_are_not(
    kinesis: Any, gateway: KinesisGateway, clock: ManualClock
) -> None:
    stream, shard_map = await new_stream(kinesis, 4)
    hot_key = "device-hot"
    hot_shard = shard_map.shard_for_key(hot_key).shard_id
    cold = [
        key for shard, keys in keys_by_shard(shard_map).items() if shard != hot_shard for key in keys[:100]
    ]
    failed_hot = failed_cold = 0
    for _ in range(3):  # 1500 records of one key within one clock tick: 500 over the shard's 1000/s
        batch = [{"Data": b"t" * 10, "PartitionKey": hot_key}] * 400 + [
            {"Data": b"t" * 10, "PartitionKey": key} for key in cold[:100]
        ]
        response = await kinesis.put_records(StreamName=stream, Records=batch)
        failed_hot += sum("ErrorCode" in r for r in response["Records"][:400])
        failed_cold += sum("ErrorCode" in r for r in response["Records"][400:])
    assert failed_hot == 200
    assert failed_cold == 0
    stats = gateway.stats().for_stream(stream)
    assert stats[hot_shard].accepted_records == 1000
    assert stats[hot_shard].throttled_records == 200
    assert all(s.throttled_records == 0 for shard, s in stats.items() if shard != hot_shard)

    clock.advance(1.0)  # the next second brings a fresh budget
    response = await kinesis.put_records(
        StreamName=stream, Records=[{"Data": b"t", "PartitionKey": hot_key}] * 500
    )
    assert response["FailedRecordCount"] == 0


async def test_partial_failure_has_the_aws_shape_and_keeps_order(kinesis: Any, clock: ManualClock) -> None:
    stream, shard_map = await new_stream(kinesis, 2)
    by_shard = keys_by_shard(shard_map)
    hot_shard, cold_shard = sorted(by_shard)
    hot_key, cold_key = by_shard[hot_shard][0], by_shard[cold_shard][0]
    for _ in range(2):
        await kinesis.put_records(StreamName=stream, Records=[{"Data": b"f", "PartitionKey": hot_key}] * 499)

    entries = []
    for n in range(6):  # alternate: the hot shard has room for two more records only
        key = hot_key if n % 2 == 0 else cold_key
        entries.append({"Data": f"rec-{n}".encode(), "PartitionKey": key})
    response = await kinesis.put_records(StreamName=stream, Records=entries)

    results = response["Records"]
    assert len(results) == 6
    assert response["FailedRecordCount"] == 1
    assert set(results[4]) == {"ErrorCode", "ErrorMessage"}
    assert results[4]["ErrorCode"] == "ProvisionedThroughputExceededException"
    assert hot_shard in results[4]["ErrorMessage"]
    for index in (0, 1, 2, 3, 5):
        assert set(results[index]) >= {"SequenceNumber", "ShardId"}
        assert results[index]["ShardId"] == (hot_shard if index % 2 == 0 else cold_shard)
    cold_records = await read_all(kinesis, stream, cold_shard)
    assert [r["Data"] for r in cold_records] == [b"rec-1", b"rec-3", b"rec-5"]
    hot_records = await read_all(kinesis, stream, hot_shard)
    assert [r["Data"] for r in hot_records[-2:]] == [b"rec-0", b"rec-2"]


async def test_byte_budget_and_whole_call_throttle_for_put_record(kinesis: Any) -> None:
    stream, _ = await new_stream(kinesis, 1)
    big = b"b" * (600 * 1024)
    await kinesis.put_record(StreamName=stream, Data=big, PartitionKey="k")
    with pytest.raises(ClientError) as caught:
        await kinesis.put_record(StreamName=stream, Data=big, PartitionKey="k")  # 1.2 MB in one second
    assert caught.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_get_records_limited_to_five_calls_per_shard_per_second(
    kinesis: Any, clock: ManualClock
) -> None:
    stream, shard_map = await new_stream(kinesis, 2)
    first, second = (s.shard_id for s in shard_map.shards)
    iterators = {}
    for shard in (first, second):
        got = await kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="LATEST")
        iterators[shard] = got["ShardIterator"]
    for _ in range(5):
        iterators[first] = (await kinesis.get_records(ShardIterator=iterators[first]))["NextShardIterator"]
    with pytest.raises(ClientError) as caught:
        await kinesis.get_records(ShardIterator=iterators[first])
    assert caught.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    await kinesis.get_records(ShardIterator=iterators[second])  # another shard has its own budget
    clock.advance(1.0)
    await kinesis.get_records(ShardIterator=iterators[first])


async def test_read_bytes_over_budget_throttle_following_calls(
    kinesis: Any, gateway: KinesisGateway, clock: ManualClock
) -> None:
    gateway.set_limits(ShardLimits(read_bytes_per_sec=1000))
    stream, shard_map = await new_stream(kinesis, 1)
    shard = shard_map.shards[0].shard_id
    await kinesis.put_records(StreamName=stream, Records=[{"Data": b"r" * 499, "PartitionKey": "k"}] * 8)
    iterator = (
        await kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    )["ShardIterator"]
    response = await kinesis.get_records(ShardIterator=iterator)
    assert len(response["Records"]) == 8  # 4000 bytes: four seconds of a 1000 B/s budget
    with pytest.raises(ClientError):
        await kinesis.get_records(ShardIterator=response["NextShardIterator"])
    clock.advance(4.01)
    await kinesis.get_records(ShardIterator=response["NextShardIterator"])
    assert gateway.stats().shard(stream, shard).get_records_throttled == 1


async def test_response_dropped_after_accept_leaves_the_record_in_the_stream(
    kinesis: Any, gateway: KinesisGateway
) -> None:
    stream, shard_map = await new_stream(kinesis, 1)
    gateway.set_faults(FaultPlan(drop_response_rate=1.0))
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        await kinesis.put_records(StreamName=stream, Records=[{"Data": b"kept", "PartitionKey": "k"}])
    gateway.set_faults(None)
    records = await read_all(kinesis, stream, shard_map.shards[0].shard_id)
    assert [r["Data"] for r in records] == [b"kept"]
    assert gateway.stats().dropped_responses == 1


async def test_request_dropped_before_forwarding_writes_nothing(
    kinesis: Any, gateway: KinesisGateway
) -> None:
    stream, shard_map = await new_stream(kinesis, 1)
    gateway.set_faults(FaultPlan(drop_request_rate=1.0))
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        await kinesis.put_record(StreamName=stream, Data=b"lost", PartitionKey="k")
    gateway.set_faults(None)
    assert await read_all(kinesis, stream, shard_map.shards[0].shard_id) == []


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 400),
        ("KMSThrottlingException", 400),
        ("KMSAccessDeniedException", 400),
        ("InternalFailure", 500),
        ("ServiceUnavailable", 503),
    ],
)
async def test_injected_put_record_failures_carry_the_status_kinesis_sends(
    kinesis: Any, gateway: KinesisGateway, code: str, status: int
) -> None:
    """A whole PutRecord failed by injection answers as Kinesis would: clients (botocore's
    retry rules first) read a 5xx as a server fault, so a KMS error must not come back as one."""
    stream, _ = await new_stream(kinesis, 1)
    gateway.set_faults(
        FaultPlan(entry_failure_rate=1.0, entry_error_code=code, operations=frozenset({"PutRecord"}))
    )
    with pytest.raises(ClientError) as caught:
        await kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey="k")
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


@pytest.mark.parametrize(("status", "code"), [(500, "InternalFailure"), (503, "ServiceUnavailable")])
async def test_injected_server_errors(kinesis: Any, gateway: KinesisGateway, status: int, code: str) -> None:
    stream, shard_map = await new_stream(kinesis, 1)
    gateway.set_faults(FaultPlan(server_error_rate=1.0, server_error_status=status))
    with pytest.raises(ClientError) as caught:
        await kinesis.put_records(StreamName=stream, Records=[{"Data": b"x", "PartitionKey": "k"}])
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    gateway.set_faults(None)
    assert await read_all(kinesis, stream, shard_map.shards[0].shard_id) == []


async def test_injected_entry_failures_use_the_chosen_code(kinesis: Any, gateway: KinesisGateway) -> None:
    stream, shard_map = await new_stream(kinesis, 1)
    gateway.set_faults(FaultPlan(entry_failure_rate=0.3, entry_error_code="InternalFailure", seed=7))
    entries = [{"Data": str(n).encode(), "PartitionKey": f"k{n}"} for n in range(100)]
    response = await kinesis.put_records(StreamName=stream, Records=entries)
    failed = [n for n, r in enumerate(response["Records"]) if "ErrorCode" in r]
    assert 10 < len(failed) < 60
    assert response["FailedRecordCount"] == len(failed)
    assert {response["Records"][n]["ErrorCode"] for n in failed} == {"InternalFailure"}
    stored = await read_all(kinesis, stream, shard_map.shards[0].shard_id)
    assert [r["Data"] for r in stored] == [str(n).encode() for n in range(100) if n not in failed]
    assert gateway.stats().injected_entry_failures == len(failed)


async def test_other_operations_pass_through(kinesis: Any, backend: str) -> None:
    stream, _ = await new_stream(kinesis, 3)
    await kinesis.add_tags_to_stream(StreamName=stream, Tags={"team": "ingest"})
    through_gateway = await kinesis.describe_stream_summary(StreamName=stream)
    tags = await kinesis.list_tags_for_stream(StreamName=stream)
    assert through_gateway["StreamDescriptionSummary"]["OpenShardCount"] == 3
    assert tags["Tags"] == [{"Key": "team", "Value": "ingest"}]
    with pytest.raises(ClientError) as caught:
        await kinesis.describe_stream_summary(StreamName=f"missing-{uuid.uuid4().hex}")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


async def test_routing_follows_resharding(kinesis: Any, gateway: KinesisGateway) -> None:
    stream, before = await new_stream(kinesis, 1)
    await kinesis.update_shard_count(StreamName=stream, TargetShardCount=2, ScalingType="UNIFORM_SCALING")
    after = ShardMap.from_api((await kinesis.list_shards(StreamName=stream))["Shards"])
    new_shard = after.shard_for_key("k").shard_id
    assert new_shard not in before
    for _ in range(2):
        await kinesis.put_records(StreamName=stream, Records=[{"Data": b"x", "PartitionKey": "k"}] * 500)
    response = await kinesis.put_records(StreamName=stream, Records=[{"Data": b"x", "PartitionKey": "k"}])
    # The budget spent is the new shard's: the gateway re-read the shards after the resharding call.
    assert response["Records"][0]["ErrorCode"] == "ProvisionedThroughputExceededException"
    assert new_shard in response["Records"][0]["ErrorMessage"]
    assert gateway.stats().shard(stream, new_shard).throttled_records == 1


async def test_cbor_bodies_are_refused(gateway: KinesisGateway) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gateway.endpoint,
            data=b"\xa0",
            headers={
                "X-Amz-Target": "Kinesis_20131202.PutRecord",
                "Content-Type": "application/x-amz-cbor-1.1",
            },
        ) as response,
    ):
        body = json.loads(await response.read())
    assert response.status == 400
    assert body["__type"] == "SerializationException"


async def test_explicit_hash_key_routes_the_entry(kinesis: Any, gateway: KinesisGateway) -> None:
    stream, shard_map = await new_stream(kinesis, 2)
    last = shard_map.shards[-1]
    response = await kinesis.put_records(
        StreamName=stream,
        Records=[{"Data": b"e", "PartitionKey": "any", "ExplicitHashKey": str(last.starting_hash_key)}] * 3,
    )
    assert {r["ShardId"] for r in response["Records"]} == {last.shard_id}
    assert gateway.stats().shard(stream, last.shard_id).accepted_records == 3
    assert base64.b64encode(b"e")  # payloads travel base64-encoded through the JSON protocol


async def test_serial_writes_keep_every_record_of_concurrent_puts_to_one_shard(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto gives concurrent puts to one shard the same sequence number and keeps one record:
    forwarded as they came, these 10,000 got about 27 duplicate numbers in each of 5 runs."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    unlimited = ShardLimits(scale_percent=10_000)
    async with (
        KinesisGateway(backend, limits=unlimited, serial_writes=True) as gateway,
        get_session().create_client("kinesis", endpoint_url=gateway.endpoint, config=NO_RETRIES) as client,
    ):
        stream, shard_map = await new_stream(client, 1)

        async def put(batch: int) -> list[str]:
            records = [{"Data": b"%d-%d" % (batch, n), "PartitionKey": "k"} for n in range(250)]
            response = await client.put_records(StreamName=stream, Records=records)
            assert response["FailedRecordCount"] == 0
            return [r["SequenceNumber"] for r in response["Records"]]

        sequence_numbers = [s for batch in await asyncio.gather(*(put(b) for b in range(40))) for s in batch]
        assert len(set(sequence_numbers)) == 10_000
        shard_id = shard_map.shards[0].shard_id
        read = await read_all(client, stream, shard_id)
        assert sorted(r["Data"] for r in read) == sorted(
            b"%d-%d" % (b, n) for b in range(40) for n in range(250)
        )
