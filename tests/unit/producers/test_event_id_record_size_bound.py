"""A record with an event id travels as a one-record aggregate, whose entry counts its
partition key twice (the key table and the entry's key): near the stream's limit, with a
key of 4-byte UTF-8 characters, it must be refused at ``send()`` rather than sent over the
limit (Kinesis refuses the whole PutRecords call carrying it)."""

from __future__ import annotations

import pytest

from producers.kinesis import KinesisProducer
from shardline.aggregation import single_aggregate_size
from shardline.errors import RecordTooLargeError
from shardline.limits import DEFAULT_MAX_RECORD_BYTES
from shardline.records import Record
from tests.unit.producers.fake_kinesis import FakeKinesis

WIDE_KEY = "\U00010000" * 256  # 256 characters, 1,024 UTF-8 bytes


def _entry_size(data_length: int) -> int:
    """What the record's PutRecords entry weighs: the aggregate plus the entry's key bytes."""
    encoded = single_aggregate_size(WIDE_KEY, b"a" * data_length, None, "e")
    return encoded + len(WIDE_KEY.encode("utf-8"))


async def test_an_event_id_record_over_the_limit_with_a_wide_key_is_refused_before_sending() -> None:
    # data + key bytes are under the limit, but the one-record aggregate's entry is not
    data_length = DEFAULT_MAX_RECORD_BYTES - 1220
    assert _entry_size(data_length) > DEFAULT_MAX_RECORD_BYTES
    fake = FakeKinesis(1)
    async with KinesisProducer("s", client=fake) as producer:
        with pytest.raises(RecordTooLargeError):
            await producer.send(b"a" * data_length, partition_key=WIDE_KEY, event_id="e")
        with pytest.raises(RecordTooLargeError, match="record 0 of the batch"):
            await producer.send_many([Record(b"a" * data_length, WIDE_KEY, event_id="e")])
    assert fake.calls == []


async def test_an_event_id_record_exactly_at_the_limit_is_sent_and_one_byte_more_is_refused() -> None:
    probe = DEFAULT_MAX_RECORD_BYTES - 4096
    largest = probe + DEFAULT_MAX_RECORD_BYTES - _entry_size(probe)
    assert _entry_size(largest) == DEFAULT_MAX_RECORD_BYTES
    fake = FakeKinesis(1)
    async with KinesisProducer("s", client=fake) as producer:
        with pytest.raises(RecordTooLargeError):
            await producer.send(b"a" * (largest + 1), partition_key=WIDE_KEY, event_id="e")
        ack = await (await producer.send(b"a" * largest, partition_key=WIDE_KEY, event_id="e"))
    assert ack.sub_sequence_number == 0
    (entry,) = [entry for call in fake.calls for entry in call]
    assert len(entry["Data"]) + len(entry["PartitionKey"].encode("utf-8")) == DEFAULT_MAX_RECORD_BYTES
