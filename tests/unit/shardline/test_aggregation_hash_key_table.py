"""An aggregate whose explicit-hash-key table holds anything but a hash key is no aggregate.

The table's entries are text the writer chose.  ``int()`` read ``" 5 "``, ``"1_0"`` and ``"٣"``
as 5, 10 and 3 and took ``"-5"`` and ``2**200`` as they were: the user records came out with
explicit hash keys their producer never sent, or outside the hash key space (which the archive
line then carried, and a backfill refused).  Such an aggregate is kept whole, as one plain
record, like one whose table entry is not a number at all (the KPL writes decimal text in
0..2**128-1 and nothing else).
"""

from __future__ import annotations

import hashlib

import pytest

from consumers.kinesis.deaggregate import records_from_api
from shardline.aggregation import MAGIC, AggregateBuilder, deaggregate, deaggregate_consumed
from shardline.records import ConsumedRecord, KinesisPosition


def _field(tag: int, value: bytes) -> bytes:
    assert len(value) < 128
    return bytes([tag, len(value)]) + value


def _aggregate(hash_key: bytes) -> bytes:
    record = b"\x08\x00\x10\x00" + _field(0x1A, b"payload")  # key index 0, hash key index 0
    body = _field(0x0A, b"k") + _field(0x12, hash_key) + _field(0x1A, record)
    return MAGIC + body + hashlib.md5(body).digest()


NOT_HASH_KEYS = {
    "spaces": b" 5 ",
    "underscore": b"1_0",
    "Arabic-Indic digit": "٣".encode(),
    "superscript digit": "²".encode(),
    "negative": b"-5",
    "plus sign": b"+5",
    "2**128": str(2**128).encode(),
    "not UTF-8": b"\xff5",
}


@pytest.mark.parametrize("hash_key", NOT_HASH_KEYS.values(), ids=NOT_HASH_KEYS.keys())
def test_a_table_entry_that_is_no_hash_key_keeps_the_record_whole(hash_key: bytes) -> None:
    data = _aggregate(hash_key)

    assert deaggregate(data) is None
    [record] = records_from_api(
        [{"Data": data, "PartitionKey": "p", "SequenceNumber": "7"}], stream="s", shard_id="shardId-0"
    )
    assert (record.data, record.partition_key, record.explicit_hash_key) == (data, "p", None)
    consumed = ConsumedRecord(data, "p", KinesisPosition("s", "shardId-0", "7"))
    assert deaggregate_consumed(consumed) == [consumed]


@pytest.mark.parametrize("hash_key", [0, 5, 2**128 - 1])
def test_hash_keys_in_the_kpl_form_still_expand(hash_key: int) -> None:
    builder = AggregateBuilder()
    builder.try_add("k", b"payload", hash_key)
    assert builder.encode() == _aggregate(str(hash_key).encode())

    raw = {"Data": builder.encode(), "PartitionKey": "k", "SequenceNumber": "7"}
    [record] = records_from_api([raw], stream="s", shard_id="shardId-0")
    assert (record.data, record.explicit_hash_key) == (b"payload", hash_key)
