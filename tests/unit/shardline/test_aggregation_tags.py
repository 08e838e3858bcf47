"""Event ids in KPL tags, and the batch append path: exact sizes, byte-for-byte agreement with
protobuf, and aws-kinesis-agg still reading (and ignoring the tags of) what we write."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import aws_kinesis_agg.deaggregator as peer_deaggregator
from hypothesis import given, settings
from hypothesis import strategies as st

from shardline._kpl_pb import AggregatedRecord
from shardline.aggregation import (
    EVENT_ID_TAG,
    MAGIC,
    AggregateBuilder,
    UserRecord,
    deaggregate,
    deaggregate_consumed,
    single_aggregate_size,
)
from shardline.limits import HASH_KEY_MAX
from shardline.records import ConsumedRecord, KinesisPosition, Record

ARRIVAL = datetime(2024, 1, 1, tzinfo=UTC)
Tagged = tuple[str, bytes, int | None, str | None]

tagged_entries = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "ü-key", "🙂", "k" * 200]),
        st.binary(max_size=300),
        st.none() | st.sampled_from([0, 7, HASH_KEY_MAX]),
        st.none() | st.text(min_size=1, max_size=80),
    ),
    min_size=1,
    max_size=60,
)


def protobuf_reference(items: list[Tagged]) -> bytes:
    """The same aggregate, tags included, serialised by the protobuf library itself."""
    message = AggregatedRecord()
    key_index: dict[str, int] = {}
    hash_index: dict[int, int] = {}
    for key, data, ehk, event_id in items:
        if key not in key_index:
            key_index[key] = len(key_index)
            message.partition_key_table.append(key)
        record = message.records.add(partition_key_index=key_index[key], data=data)
        if ehk is not None:
            if ehk not in hash_index:
                hash_index[ehk] = len(hash_index)
                message.explicit_hash_key_table.append(str(ehk))
            record.explicit_hash_key_index = hash_index[ehk]
        if event_id is not None:
            record.tags.add(key=EVENT_ID_TAG, value=event_id)
    body: bytes = message.SerializeToString(deterministic=True)
    return MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()


@settings(max_examples=150)
@given(tagged_entries)
def test_tags_are_byte_identical_to_protobuf_with_exact_sizes(items: list[Tagged]) -> None:
    builder = AggregateBuilder(10_000_000)
    for key, data, ehk, event_id in items:
        predicted = builder.size_with(key, data, ehk, event_id)
        assert builder.try_add(key, data, ehk, event_id)
        assert builder.encoded_size == predicted
    blob = builder.encode()
    assert blob == protobuf_reference(items)
    assert len(blob) == builder.encoded_size
    assert builder.tagged == any(event_id is not None for *_, event_id in items)


@settings(max_examples=100)
@given(tagged_entries)
def test_event_ids_read_back_and_aws_kinesis_agg_ignores_them(items: list[Tagged]) -> None:
    builder = AggregateBuilder(10_000_000)
    for key, data, ehk, event_id in items:
        builder.try_add(key, data, ehk, event_id)
    blob = builder.encode()
    assert deaggregate(blob) == [
        UserRecord(key, data, ehk, index, event_id) for index, (key, data, ehk, event_id) in enumerate(items)
    ]
    raw = {"SequenceNumber": "1", "PartitionKey": "o", "ApproximateArrivalTimestamp": ARRIVAL, "Data": blob}
    peer = [r["kinesis"] for r in peer_deaggregator.iter_deaggregate_records([raw], data_format="Boto3")]
    assert [(r["partitionKey"], base64.b64decode(r["data"])) for r in peer] == [(k, d) for k, d, *_ in items]
    assert [r["subSequenceNumber"] for r in peer] == list(range(len(items)))
    for record, (_, _, ehk, _) in zip(peer, items, strict=True):
        if ehk is not None:
            assert int(record["explicitHashKey"]) == ehk


def test_a_single_tagged_record_is_a_valid_aggregate_of_the_computed_size() -> None:
    builder = AggregateBuilder(100)
    assert builder.try_add("device-1", b"x" * 5_000, None, "evt-1")  # a first record always fits
    blob = builder.encode()
    assert len(blob) == single_aggregate_size("device-1", b"x" * 5_000, None, "evt-1")
    assert deaggregate(blob) == [UserRecord("device-1", b"x" * 5_000, None, 0, "evt-1")]


def test_foreign_tags_and_tags_without_value_give_no_event_id() -> None:
    message = AggregatedRecord()
    message.partition_key_table.append("k")
    message.records.add(partition_key_index=0, data=b"event_id").tags.add(key="other", value="v")
    message.records.add(partition_key_index=0, data=b"y").tags.add(key=EVENT_ID_TAG)
    body = message.SerializeToString()
    blob = MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()
    assert [r.event_id for r in deaggregate(blob) or []] == [None, None]


def test_a_tag_value_that_is_not_utf8_is_no_event_id_and_the_record_still_reads() -> None:
    # protobuf hands a proto2 string that is not UTF-8 back as bytes: read as an event id it
    # broke the record's JSON (sinks, dead letter) and the MAC check downstream
    message = AggregatedRecord()
    message.partition_key_table.append("k")
    message.records.add(partition_key_index=0, data=b'{"a":1}').tags.add(key=EVENT_ID_TAG, value="xx")
    message.records.add(partition_key_index=0, data=b"ok").tags.add(key=EVENT_ID_TAG, value="id-2")
    body = message.SerializeToString().replace(b"\x12\x02xx", b"\x12\x02\xff\xfe")  # same length
    blob = MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()
    assert [(r.data, r.event_id) for r in deaggregate(blob) or []] == [(b'{"a":1}', None), (b"ok", "id-2")]
    outer = ConsumedRecord(blob, "k", KinesisPosition("s", "shardId-000000000000", "42"))
    inner = deaggregate_consumed(outer)
    assert [r.event_id for r in inner] == [None, "id-2"]
    assert all(type(r.event_id) in (str, type(None)) for r in inner)


def test_deaggregate_consumed_keeps_an_unsigned_event_id_informational() -> None:
    builder = AggregateBuilder()
    builder.try_add("a", b"1", None, "id-1")
    builder.try_add("b", b"2")
    outer = ConsumedRecord(builder.encode(), "a", KinesisPosition("s", "shardId-000000000000", "42"))
    inner = deaggregate_consumed(outer)
    assert [(r.data, r.event_id) for r in inner] == [(b"1", "id-1"), (b"2", None)]
    # without a verified MAC the bytes never choose the sink key
    assert inner[0].identity == "s/shardId-000000000000/42/0"
    assert inner[1].identity == "s/shardId-000000000000/42/1"


@settings(max_examples=150)
@given(tagged_entries, st.integers(min_value=200, max_value=4_000))
def test_add_records_matches_try_add_byte_for_byte(items: list[Tagged], max_bytes: int) -> None:
    records = [Record(data, key, ehk, event_id) for key, data, ehk, event_id in items]
    keys = [key for key, _, _, _ in items]
    datas = [data for _, data, _, _ in items]
    extras = {
        i: (ehk, event_id) for i, (_, _, ehk, event_id) in enumerate(items) if ehk is not None or event_id
    }
    order = list(range(len(records)))[::-1]  # any order of indexes into the records
    reference = AggregateBuilder(max_bytes)
    fast = AggregateBuilder(max_bytes)
    start = 0
    for _ in range(3):  # reused builders: the header caches carry over
        while start < len(order):
            expected_stop = start
            expected_bytes = 0
            for index in order[start:]:
                r = records[index]
                assert r.partition_key is not None
                if not reference.try_add(r.partition_key, r.data, r.explicit_hash_key, r.event_id):
                    break
                expected_stop += 1
                expected_bytes += len(r.data) + len(r.partition_key)
            stop, user_bytes = fast.add_records(keys, datas, order, start, extras)
            assert (stop, user_bytes) == (expected_stop, expected_bytes)
            assert stop > start  # a first record always fits
            assert fast.encoded_size == reference.encoded_size
            assert fast.encode() == reference.encode()
            assert fast.entry_partition_key == reference.entry_partition_key
            assert fast.entry_explicit_hash_key == reference.entry_explicit_hash_key
            assert len(fast) == len(reference) == stop - start
            assert len(fast.encode()) <= max_bytes or len(fast) == 1
            fast.reset()
            reference.reset()
            start = stop
        start = 0


@settings(max_examples=100)
@given(
    st.lists(st.tuples(st.text(min_size=1, max_size=30), st.binary(max_size=300)), min_size=1, max_size=80),
    st.integers(min_value=120, max_value=4_000),
)
def test_add_records_of_keys_new_to_every_cache_matches_try_add(
    items: list[tuple[str, bytes]], max_bytes: int
) -> None:
    """Many distinct keys (a million devices): nearly every record brings a key no cache holds."""
    keys = [key for key, _ in items]
    datas = [data for _, data in items]
    order = list(range(len(items)))
    reference, fast = AggregateBuilder(max_bytes), AggregateBuilder(max_bytes)
    start = 0
    while start < len(order):
        stop = start
        for index in order[start:]:
            if not reference.try_add(keys[index], datas[index]):
                break
            stop += 1
        assert fast.add_records(keys, datas, order, start)[0] == stop
        assert fast.encode() == reference.encode()
        assert (fast.entry_partition_key, fast.entry_explicit_hash_key) == (
            reference.entry_partition_key,
            reference.entry_explicit_hash_key,
        )
        fast.reset()
        reference.reset()
        start = stop
