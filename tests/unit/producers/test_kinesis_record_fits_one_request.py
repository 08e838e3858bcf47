"""A record bigger than one PutRecords request (a stream allowing 10 MiB records, or a small
``max_batch_bytes``) is refused at ``send()``: accepted, it was never taken into a request and
held its shard's queue, the records behind it included, until its time to live ran out."""

from __future__ import annotations

import pytest

from producers.kinesis import KinesisProducer
from shardline.errors import RecordTooLargeError
from shardline.limits import PUT_RECORDS_MAX_BYTES, MiB
from tests.unit.producers.fake_kinesis import FakeKinesis

FAST = {"linger": 0.01, "rate_limit_percent": None}


async def test_a_stream_of_10_mib_records_caps_records_at_one_request() -> None:
    fake = FakeKinesis(1)
    fake.max_record_kib = 10 * 1024
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        assert producer.max_record_bytes == PUT_RECORDS_MAX_BYTES
        with pytest.raises(RecordTooLargeError):
            await producer.send(b"a" * (6 * MiB), partition_key="k")
        largest = b"a" * (PUT_RECORDS_MAX_BYTES - 1)
        ack = await (await producer.send(largest, partition_key="k"))
        behind = await (await producer.send(b"b", partition_key="k"))
    assert ack.shard_id == behind.shard_id
    assert [len(entry["Data"]) for call in fake.calls for entry in call] == [len(largest), 1]


async def test_a_record_over_max_batch_bytes_is_refused_and_one_at_it_is_sent() -> None:
    fake = FakeKinesis(1)
    async with KinesisProducer("s", client=fake, max_batch_bytes=64 * 1024, **FAST) as producer:
        with pytest.raises(RecordTooLargeError):
            await producer.send(b"a" * (64 * 1024), partition_key="k")  # + 1 key byte
        ack = await (await producer.send(b"a" * (64 * 1024 - 1), partition_key="k"))
    assert ack.sequence_number
