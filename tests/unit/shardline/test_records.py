"""Records and positions: immutable values whose reprs never show payloads."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition, Record


def test_kinesis_positions_order_numerically_then_by_sub_sequence() -> None:
    short = KinesisPosition("s", "shard-1", "9")
    long = KinesisPosition("s", "shard-1", "10")
    assert short < long and long > short  # "9" > "10" as strings; numbers decide
    assert KinesisPosition("s", "shard-1", "10", 2) > KinesisPosition("s", "shard-1", "10", 1)
    assert max(short, long) is long
    assert sorted([long, short]) == [short, long]


def test_kinesis_position_equality_names_stream_and_shard() -> None:
    position = KinesisPosition("s", "shard-1", "10", 1)
    assert position == KinesisPosition("s", "shard-1", "10", 1)
    assert hash(position) == hash(KinesisPosition("s", "shard-1", "10", 1))
    assert position != KinesisPosition("s", "shard-2", "10", 1)
    assert position != KinesisPosition("other", "shard-1", "10", 1)
    assert len({position, KinesisPosition("s", "shard-1", "10", 1)}) == 1


def test_comparing_positions_of_different_kinds_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        _ = KinesisPosition("s", "a", "1") < KafkaPosition("t", 0, 1)  # type: ignore[operator]


def test_values_are_frozen_and_survive_copying() -> None:
    record = ConsumedRecord(
        b"payload", "key", KinesisPosition("s", "a", "5", 2), event_id="e-1", event_id_verified=True
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.data = b"other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.position.sequence_number = "6"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(record)) == record
    assert dataclasses.replace(record, event_id=None).identity == "s/a/5/2"
    assert record.identity == "e-1"
    assert dataclasses.replace(record, event_id_verified=False).identity == "s/a/5/2"


def test_reprs_hide_payloads() -> None:
    secret = b"temperature=42;owner=alice"
    consumed = ConsumedRecord(secret, "key", KafkaPosition("t", 0, 7))
    produced = Record(secret, partition_key="key")
    for text in (repr(consumed), repr(produced), str(consumed)):
        assert "alice" not in text
        assert f"<{len(secret)} bytes>" in text
