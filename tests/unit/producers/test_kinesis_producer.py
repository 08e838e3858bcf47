"""The Kinesis producer against an in-memory client: acks, validation, retries, order, back-pressure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from producers import KinesisProducer, keys
from producers.config import ProducerConfig
from shardline.aggregation import deaggregate
from shardline.errors import (
    BufferFullError,
    ClosedError,
    ConfigurationError,
    DeliveryError,
    InvalidDataError,
    InvalidExplicitHashKeyError,
    InvalidPartitionKeyError,
    KmsError,
    RecordTooLargeError,
    ResourceNotFoundError,
)
from shardline.limits import MiB
from shardline.records import Ack, Record
from shardline.shardmath import ShardMap, partition_key_hash
from tests.unit.producers.fake_kinesis import FakeKinesis, client_error

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}


def user_records(fake: FakeKinesis) -> list[tuple[str, str, bytes]]:
    """(shard, partition key, data) of every user record written, de-aggregated."""
    out = []
    for shard_id, entry in fake.written:
        users = deaggregate(entry["Data"])
        if users is None:
            out.append((shard_id, entry["PartitionKey"], entry["Data"]))
        else:
            out.extend((shard_id, u.partition_key, u.data) for u in users)
    return out


async def test_send_returns_a_future_resolving_to_an_ack() -> None:
    fake = FakeKinesis()
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        future = await producer.send(b"hello", partition_key="dev-42")
        ack = await future
        ack2 = await producer.send_and_wait(b"again", partition_key="dev-42")
    assert isinstance(ack, Ack) and isinstance(ack2, Ack)
    expected = ShardMap.from_api(fake.shards).shard_for_key("dev-42").shard_id
    assert ack.shard_id == expected == ack2.shard_id
    assert [(k, d) for _, k, d in user_records(fake)] == [("dev-42", b"hello"), ("dev-42", b"again")]


async def test_send_many_aggregates_per_shard_and_acks_in_input_order() -> None:
    fake = FakeKinesis()
    records = [Record(f"r{i}".encode(), partition_key=f"k{i % 50}") for i in range(2000)]
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        acks = await (await producer.send_many(records))
    assert acks.ok and len(acks) == 2000
    shard_map = ShardMap.from_api(fake.shards)
    for record, ack in zip(records, acks, strict=True):
        assert ack.shard_id == shard_map.shard_for_key(record.partition_key or "").shard_id
    written = user_records(fake)
    assert sorted(d for _, _, d in written) == sorted(r.data for r in records)
    for shard_id, key, _ in written:
        assert shard_map.shard_for_key(key).shard_id == shard_id
    assert sum(len(c) for c in fake.calls) < 100  # aggregated: far fewer entries than records


async def test_send_many_of_501_plain_records_is_split_into_requests() -> None:
    fake = FakeKinesis()
    records = [Record(b"x", partition_key=f"k{i}") for i in range(501)]
    async with KinesisProducer("s", client=fake, aggregate=False, **FAST) as producer:
        acks = await (await producer.send_many(records))
    assert acks.ok
    assert all(len(call) <= 500 for call in fake.calls)
    assert sum(len(call) for call in fake.calls) == 501


async def test_key_strategy_and_serializer() -> None:
    fake = FakeKinesis()
    async with KinesisProducer(
        "s", client=fake, key_strategy=keys.field("device_id"), serializer=lambda v: repr(v).encode(), **FAST
    ) as producer:
        ack = await producer.send_and_wait({"device_id": "dev-7", "t": 1})
    assert ack.shard_id == ShardMap.from_api(fake.shards).shard_for_key("dev-7").shard_id
    assert user_records(fake)[0][1] == "dev-7"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"data": "text", "partition_key": "k"}, InvalidDataError),
        ({"data": 5, "partition_key": "k"}, InvalidDataError),
        ({"data": None, "partition_key": "k"}, InvalidDataError),
        ({"data": b"x", "partition_key": ""}, InvalidPartitionKeyError),
        ({"data": b"x", "partition_key": "k" * 257}, InvalidPartitionKeyError),
        ({"data": b"x"}, InvalidPartitionKeyError),
        ({"data": b"x", "partition_key": "k", "explicit_hash_key": -1}, InvalidExplicitHashKeyError),
        ({"data": b"x", "partition_key": "k", "explicit_hash_key": 2**128}, InvalidExplicitHashKeyError),
        ({"data": b"x" * MiB, "partition_key": "k"}, RecordTooLargeError),
    ],
)
async def test_bad_input_raises_before_any_call_and_loses_nothing_accepted(
    kwargs: dict[str, Any], error: type[Exception]
) -> None:
    fake = FakeKinesis()
    gate = asyncio.Event()
    fake.gate = gate
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        accepted = await producer.send(b"good", partition_key="ok")
        data = kwargs.pop("data")
        with pytest.raises(error):
            await producer.send(data, **kwargs)
        with pytest.raises(error):
            await producer.send_many([Record(b"fine", partition_key="a"), Record(data, **kwargs)])
        assert producer.buffered[0] == 1
        gate.set()
        await accepted
    assert [d for _, _, d in user_records(fake)] == [b"good"]


async def test_stream_max_record_size_is_honoured() -> None:
    fake = FakeKinesis()
    fake.max_record_kib = 2
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        assert producer.max_record_bytes == 2048
        with pytest.raises(RecordTooLargeError):
            await producer.send(b"x" * 2048, partition_key="k")


async def test_only_failed_entries_are_resent() -> None:
    def throttle_odd_entries_once(call: int, entry: dict[str, Any]) -> str | None:
        if call == 0 and int(entry["PartitionKey"][1:]) % 2:
            return "ProvisionedThroughputExceededException"
        return None

    fake = FakeKinesis(fault=throttle_odd_entries_once)
    records = [Record(b"d", partition_key=f"k{i}") for i in range(10)]
    async with KinesisProducer("s", client=fake, aggregate=False, **FAST) as producer:
        acks = await (await producer.send_many(records))
    assert acks.ok
    assert len(fake.calls[0]) == 10
    resent = [e["PartitionKey"] for call in fake.calls[1:] for e in call]
    assert sorted(resent) == sorted(f"k{i}" for i in range(1, 10, 2))
    assert len(fake.written) == 10


async def test_bounded_attempts_then_delivery_error() -> None:
    fake = FakeKinesis(fault=lambda call, entry: "ProvisionedThroughputExceededException")
    async with KinesisProducer("s", client=fake, max_attempts=3, **FAST) as producer:
        future = await producer.send(b"x", partition_key="k")
        with pytest.raises(DeliveryError) as info:
            await future
    assert info.value.attempts == 3
    assert len(fake.calls) == 3


async def test_non_retriable_entry_error_fails_at_once() -> None:
    fake = FakeKinesis(fault=lambda call, entry: "KMSAccessDeniedException")
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        future = await producer.send(b"x", partition_key="k")
        with pytest.raises(KmsError):
            await future
    assert len(fake.calls) == 1


async def test_whole_call_errors_retry_when_transient_and_fail_when_not() -> None:
    fake = FakeKinesis()
    fake.call_errors = [client_error("ResourceNotFoundException")]
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        with pytest.raises(ResourceNotFoundError):
            await producer.send_and_wait(b"x", partition_key="k")
        assert len(fake.calls) == 1
        fake.call_errors = [client_error("InternalFailure", 500), client_error("ServiceUnavailable", 503)]
        ack = await producer.send_and_wait(b"y", partition_key="k")
    assert ack.sequence_number
    assert len(fake.calls) == 4
    assert [d for _, _, d in user_records(fake)] == [b"y"]


async def test_ordered_mode_keeps_per_key_order_under_partial_failures() -> None:
    attempts: dict[bytes, int] = {}

    def fail_first_try_of_every_third(call: int, entry: dict[str, Any]) -> str | None:
        data = entry["Data"]
        seen = attempts.get(data, 0)
        attempts[data] = seen + 1
        if seen == 0 and int(data) % 3 == 0:
            return "ProvisionedThroughputExceededException"
        return None

    fake = FakeKinesis(shards=2, fault=fail_first_try_of_every_third)
    records = [Record(str(i).encode(), partition_key=f"k{i % 5}") for i in range(200)]
    async with KinesisProducer("s", client=fake, aggregate=False, ordered=True, **FAST) as producer:
        acks = await (await producer.send_many(records))
    assert acks.ok
    by_key: dict[str, list[int]] = {}
    for _, entry in fake.written:
        by_key.setdefault(entry["PartitionKey"], []).append(int(entry["Data"]))
    for sequence in by_key.values():
        assert sequence == sorted(sequence)
    assert sum(len(v) for v in by_key.values()) == 200


async def test_back_pressure_blocks_or_raises_when_buffer_is_full() -> None:
    fake = FakeKinesis()
    fake.gate = asyncio.Event()
    async with KinesisProducer("s", client=fake, buffer_max_records=4, **FAST) as producer:
        futures = [await producer.send(b"x", partition_key=f"k{i}") for i in range(4)]
        with pytest.raises(BufferFullError):
            await producer.send(b"x", partition_key="k", block=False)
        blocked = asyncio.create_task(producer.send(b"x", partition_key="late"))
        await asyncio.sleep(0)
        assert not blocked.done()
        assert producer.buffered[0] == 4
        fake.gate.set()
        late = await blocked
        await asyncio.gather(*futures, late)


async def test_closed_producer_refuses_sends() -> None:
    fake = FakeKinesis()
    producer = KinesisProducer("s", client=fake, **FAST)
    await producer.start()
    await producer.close()
    with pytest.raises(ClosedError):
        await producer.send(b"x", partition_key="k")


async def test_shard_split_replans_buffered_aggregates() -> None:
    fake = FakeKinesis(shards=1)
    async with KinesisProducer("s", client=fake, linger=60, rate_limit_percent=None) as producer:
        batch = await producer.send_many([Record(b"v", partition_key=f"k{i}") for i in range(300)])
        half = fake.split_the_only_shard()
        assert await producer.refresh_shard_map()
        await producer.flush()
        acks = await batch
    assert acks.ok
    for shard_id, key, _ in user_records(fake):
        expected = "left" if partition_key_hash(key) < half else "right"
        assert shard_id == expected


async def test_rate_limiter_paces_a_hot_shard() -> None:
    fake = FakeKinesis()
    now = [0.0]
    async with KinesisProducer(
        "s", client=fake, aggregate=False, clock=lambda: now[0], linger=0.0, rate_limit_percent=1.0
    ) as producer:
        futures = [await producer.send(b"x", partition_key="hot") for _ in range(15)]
        cold = await producer.send(b"x", partition_key="cold-key-on-another-shard-0")
        await asyncio.gather(*futures[:10])
        # The clock is frozen: 1% of 1000 records/s lets exactly 10 entries through.
        assert not any(f.done() for f in futures[10:])
        await cold  # another shard is not held up by the hot one
        now[0] += 1.0
        await asyncio.gather(*futures[10:])
    assert len(fake.written) == 16


def test_unknown_option_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        KinesisProducer("s", client=object(), lingr=1)
    with pytest.raises(ConfigurationError):
        ProducerConfig(max_batch_entries=501)
