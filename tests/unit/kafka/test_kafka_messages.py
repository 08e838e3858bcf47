"""Turning confluent-kafka messages into consumed records and per-partition batches."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers._kafka_messages import KafkaRecords, lazy_batches, to_batches, to_record
from shardline.eventid import EVENT_ID_MAC_HEADER, EventIdKey
from shardline.kafka_config import EVENT_ID_HEADER
from shardline.records import ConsumedRecord, KafkaPosition


def offsets(records: Sequence[ConsumedRecord]) -> list[int]:
    found = []
    for record in records:
        assert isinstance(record.position, KafkaPosition)
        found.append(record.position.offset)
    return found


MILLIS = 1_700_000_000_123


def message(partition: int, offset: int, **fields: Any) -> Message:
    fields.setdefault("key", b"device-1")
    fields.setdefault("value", b"payload")
    fields.setdefault("timestamp", (1, MILLIS))
    return Message(topic="telemetry", partition=partition, offset=offset, **fields)


def test_a_record_equals_one_built_through_the_constructors() -> None:
    record = to_record(message(2, 41))
    expected = ConsumedRecord(
        b"payload",
        "device-1",
        KafkaPosition("telemetry", 2, 41),
        datetime.fromtimestamp(MILLIS / 1000, UTC),
        None,
        None,
        None,
    )
    assert record == expected
    assert record.position == KafkaPosition("telemetry", 2, 41)
    assert hash(record.position) == hash(KafkaPosition("telemetry", 2, 41))
    assert record.identity == "telemetry/2/41"


def test_records_and_positions_are_the_frozen_classes_themselves() -> None:
    record = to_record(message(2, 41))
    assert type(record) is ConsumedRecord and type(record.position) is KafkaPosition
    with pytest.raises(AttributeError):
        record.data = b"changed"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        record.position.offset = 1  # type: ignore[misc]
    assert {record, to_record(message(2, 41))} == {record}  # hashable, equal by value


def test_batches_group_by_partition_and_keep_each_partitions_order() -> None:
    messages = [message(0, 0), message(1, 0), message(1, 1), message(0, 1), message(0, 2), message(1, 2)]
    batches = to_batches(messages)
    assert [batch.partition for batch in batches] == ["telemetry/0", "telemetry/1"]
    assert [offsets(batch.records) for batch in batches] == [[0, 1, 2], [0, 1, 2]]


def test_headers_carry_the_event_id_and_missing_header_values_become_empty() -> None:
    headers = [("source", b"edge-7"), (EVENT_ID_HEADER, b"evt-42"), ("empty", None)]
    record = to_record(message(0, 5, headers=headers))
    assert record.event_id == "evt-42"
    assert record.identity == "telemetry/0/5"  # unsigned: informational only
    assert record.headers == {"source": b"edge-7", EVENT_ID_HEADER: b"evt-42", "empty": b""}
    plain = to_record(message(0, 6))
    assert plain.headers is None and plain.event_id is None


def test_a_signed_event_id_header_is_the_identity_only_with_the_key() -> None:
    key = EventIdKey("an-event-id-key-of-at-least-32-characters")
    signed = [(EVENT_ID_HEADER, b"evt-42"), (EVENT_ID_MAC_HEADER, key.mac("evt-42", b"payload").encode())]
    forged = [(EVENT_ID_HEADER, b"evt-42"), (EVENT_ID_MAC_HEADER, key.mac("evt-42", b"other").encode())]
    [batch] = to_batches(
        [message(0, 5, headers=signed), message(0, 6, headers=forged), message(0, 7)], event_id_key=key
    )
    assert [r.identity for r in batch.records] == ["evt-42", "telemetry/0/6", "telemetry/0/7"]
    assert to_record(message(0, 5, headers=signed)).identity == "telemetry/0/5"  # no key given


def test_keys_values_and_timestamps_in_their_odd_forms() -> None:
    tombstone = to_record(message(0, 1, key=None, value=None))
    assert tombstone.data == b"" and tombstone.partition_key == ""
    binary = to_record(message(0, 2, key=b"\xff\xfe"))
    assert binary.partition_key.encode("utf-8", "surrogateescape") == b"\xff\xfe"
    no_time = to_record(message(0, 3, timestamp=(0, 0)))
    assert no_time.arrival_time is None
    assert to_record(message(0, 4), with_timestamp=False).arrival_time is None


def test_equal_timestamps_share_one_datetime_and_different_ones_do_not() -> None:
    records = to_batches([message(0, 0), message(0, 1), message(0, 2, timestamp=(1, MILLIS + 1))])[0].records
    assert records[0].arrival_time is records[1].arrival_time
    assert records[2].arrival_time == datetime.fromtimestamp((MILLIS + 1) / 1000, UTC)


def test_error_messages_go_to_on_error_and_never_become_records() -> None:
    eof = Message(topic="telemetry", partition=0, offset=-1, error=KafkaError(KafkaError._PARTITION_EOF))
    seen: list[KafkaError] = []
    batches = to_batches([message(0, 0), eof, message(0, 1)], on_error=seen.append)
    assert [err.code() for err in seen] == [KafkaError._PARTITION_EOF]
    assert offsets(batches[0].records) == [0, 1]
    assert len(to_batches([eof])) == 0


def test_on_error_may_stop_the_source_by_raising() -> None:
    fatal = Message(
        topic="telemetry", partition=0, offset=-1, error=KafkaError(KafkaError._FATAL, fatal=True)
    )

    def stop(err: KafkaError) -> None:
        raise RuntimeError(err.name())

    with pytest.raises(RuntimeError, match="_FATAL"):
        to_batches([message(0, 0), fatal], on_error=stop)


def test_lazy_batches_hold_the_same_records_as_eager_ones() -> None:
    key = EventIdKey("an-event-id-key-of-at-least-32-characters")
    signed = [(EVENT_ID_HEADER, b"evt-42"), (EVENT_ID_MAC_HEADER, key.mac("evt-42", b"payload").encode())]
    messages = [
        message(0, 0),
        message(1, 0, headers=signed),
        message(1, 1, key=None, value=None),
        message(0, 1, timestamp=(0, 0)),
        message(0, 2, key=b"\xff\xfe"),
    ]
    eager = to_batches(messages, event_id_key=key)
    lazy = lazy_batches(messages, event_id_key=key)
    assert [batch.partition for batch in lazy] == [batch.partition for batch in eager]
    for lazy_batch, eager_batch in zip(lazy, eager, strict=True):
        assert isinstance(lazy_batch.records, KafkaRecords)
        assert len(lazy_batch.records) == len(eager_batch.records)
        assert lazy_batch.records[-1] == eager_batch.records[-1]  # one record, built alone
        assert list(lazy_batch.records) == list(eager_batch.records)
        assert lazy_batch.records == eager_batch.records
    assert lazy[1].records[0].identity == "evt-42"


def test_lazy_records_build_nothing_until_read_then_keep_what_they_built() -> None:
    records = lazy_batches([message(0, offset) for offset in range(5)])[0].records
    assert isinstance(records, KafkaRecords)
    assert records._records is None  # counting and slicing build nothing
    tail = records[2:]
    assert isinstance(tail, KafkaRecords) and len(tail) == 3 and tail._records is None
    assert offsets(tail) == [2, 3, 4]
    assert records._records is None and records[-1] is not records[-1]  # indexing builds one, uncached
    first = list(records)
    assert records._records is not None and list(records) == first
    assert all(a is b for a, b in zip(records, first, strict=True))  # built once, then kept
    assert records[1:3]._records is not None and offsets(records[1:3]) == [1, 2]
    with pytest.raises(IndexError):
        records[5]
    assert "5 records of telemetry/0" in repr(records) and b"payload" not in repr(records).encode()


def test_lazy_batches_still_handle_message_errors_while_grouping() -> None:
    eof = Message(topic="telemetry", partition=0, offset=-1, error=KafkaError(KafkaError._PARTITION_EOF))
    seen: list[KafkaError] = []
    batches = lazy_batches([message(0, 0), eof, message(0, 1)], on_error=seen.append)
    assert [err.code() for err in seen] == [KafkaError._PARTITION_EOF]
    assert offsets(batches[0].records) == [0, 1]
    fatal = Message(
        topic="telemetry", partition=0, offset=-1, error=KafkaError(KafkaError._FATAL, fatal=True)
    )

    def stop(err: KafkaError) -> None:
        raise RuntimeError(err.name())

    with pytest.raises(RuntimeError, match="_FATAL"):
        lazy_batches([message(0, 0), fatal], on_error=stop)


def test_a_batch_is_built_with_the_collector_paused_and_a_lone_record_without() -> None:
    """Collections while a batch's records are built would only push them into older
    generations: none runs during a build, and the collector is back on after it."""
    messages = [message(0, offset) for offset in range(5_000)]
    collections: list[str] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(phase)

    unbuilt = lazy_batches(messages)[0].records
    assert isinstance(unbuilt, KafkaRecords)
    gc.collect()
    gc.callbacks.append(seen)
    try:
        records = unbuilt.records
        during_lazy = len(collections)
        gc.collect(0)
        collections.clear()
        eager = to_batches(messages)
        during_eager = len(collections)
    finally:
        gc.callbacks.remove(seen)
    assert len(records) == len(eager[0].records) == 5_000
    # Unpaused, the build's 10,000 tracked objects make a dozen collections (14 here).  After a
    # paused build the next allocation may start the one young collection that scans it.
    assert during_lazy <= 1 and during_eager <= 1
    assert gc.isenabled()
    lone = KafkaRecords(messages[:1], "t", 0)
    assert offsets([lone[0]]) == [0]
    assert gc.isenabled()


@pytest.mark.parametrize("millis", [253_402_300_800_000, 2**63 - 1, -(2**62)])
def test_a_timestamp_no_datetime_can_hold_keeps_the_record_without_an_arrival(millis: int) -> None:
    """A producer sets CreateTime to any int64 and brokers take it: year 10000 must not stop
    the consumer (datetime.fromtimestamp raised ValueError for the whole batch)."""
    batch = [
        message(0, 1),
        message(0, 2, timestamp=(1, millis), value=b"from the far future"),
        message(0, 3),
    ]
    records = list(to_batches(batch)[0].records)
    assert [record.data for record in records] == [b"payload", b"from the far future", b"payload"]
    assert offsets(records) == [1, 2, 3]
    assert records[1].arrival_time is None
    assert records[0].arrival_time == records[2].arrival_time == datetime.fromtimestamp(MILLIS / 1000, UTC)


def test_a_mac_header_that_is_not_ascii_leaves_the_record_unverified() -> None:
    """The MAC header is the producer's: bytes past ASCII raised TypeError out of
    hmac.compare_digest and stopped a consumer holding the event-id key."""
    key = EventIdKey("an-event-id-key-of-at-least-32-characters")
    headers = [(EVENT_ID_HEADER, b"evt-1"), (EVENT_ID_MAC_HEADER, "é".encode() * 11)]
    [batch] = to_batches([message(0, 1, headers=headers)], event_id_key=key)
    [record] = list(batch.records)
    assert record.event_id == "evt-1" and not record.event_id_verified
    assert record.data == b"payload"


_HEADER_NAMES = st.one_of(st.text(max_size=8), st.sampled_from([EVENT_ID_HEADER, EVENT_ID_MAC_HEADER]))
_MESSAGES = st.builds(
    lambda key, value, headers, timestamp, offset: message(
        0, offset, key=key, value=value, headers=headers or None, timestamp=timestamp
    ),
    st.one_of(st.none(), st.binary(max_size=16)),
    st.one_of(st.none(), st.binary(max_size=32)),
    st.lists(st.tuples(_HEADER_NAMES, st.one_of(st.none(), st.binary(max_size=32))), max_size=4),
    st.tuples(st.sampled_from([0, 1, 2]), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    st.integers(min_value=0, max_value=2**62),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_MESSAGES, min_size=1, max_size=5), st.booleans())
def test_any_message_a_producer_can_write_becomes_a_record(messages: list[Message], keyed: bool) -> None:
    key = EventIdKey("an-event-id-key-of-at-least-32-characters") if keyed else None
    records = [record for batch in to_batches(messages, event_id_key=key) for record in batch.records]
    assert [record.data for record in records] == [m.value() or b"" for m in messages]
