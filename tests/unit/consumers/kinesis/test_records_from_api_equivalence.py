"""records_from_api's fast path against a plain per-record reference, on random inputs.

The reference is the straightforward conversion the fast path replaced: every user record of
:func:`shardline.aggregation.deaggregate` through ``ConsumedRecord``'s own constructor, the
resume skip through :meth:`StartPosition.skips`, the range check through an MD5 per record.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.kinesis import AT_SEQUENCE_NUMBER, records_from_api
from consumers.kinesis.positions import StartPosition
from shardline.aggregation import MAGIC, AggregateBuilder, DeaggregationPolicy, deaggregate
from shardline.errors import AggregateRefusedError
from shardline.records import ConsumedRecord, KinesisPosition, RefusedRecord
from shardline.shardmath import ShardInfo, partition_key_hash

STREAM, SHARD_ID = "orders", "shardId-000000000001"
ARRIVAL = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
HALF = 2**127
SHARD = ShardInfo(SHARD_ID, 0, HALF - 1)  # half the key space: about half the keys fall outside


class Counts:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.counts[name] += int(value)


def _reference(
    raws: list[dict[str, Any]], skip: StartPosition | None, policy: DeaggregationPolicy
) -> tuple[list[ConsumedRecord], int]:
    out: list[ConsumedRecord] = []
    outside = 0
    for raw in raws:
        sequence = raw["SequenceNumber"]
        users = deaggregate(raw["Data"]) if policy.deaggregate else None
        if users is None:
            if skip is None or not skip.skips(sequence, 0):
                position = KinesisPosition(STREAM, SHARD_ID, sequence)
                out.append(ConsumedRecord(raw["Data"], raw["PartitionKey"], position, ARRIVAL))
            continue
        for user in users:
            if skip is not None and skip.skips(sequence, user.sub_sequence_number):
                continue
            if not SHARD.contains(partition_key_hash(user.partition_key)):
                outside += 1
            out.append(
                ConsumedRecord(
                    user.data,
                    user.partition_key,
                    KinesisPosition(STREAM, SHARD_ID, sequence, user.sub_sequence_number),
                    ARRIVAL,
                )
            )
    return out, outside


def _stream(rng: random.Random, keys: list[str]) -> list[dict[str, Any]]:
    """Aggregates of random sizes, with plain records and a corrupt aggregate among them."""
    raws: list[dict[str, Any]] = []
    sequence = 49_600_000_000_000_000_000_000_000_000_000_000
    for index in range(12):
        sequence += rng.randrange(1, 5)
        if index % 5 == 3:
            data, key = os.urandom(rng.randrange(1, 60)), rng.choice(keys)
        else:
            builder = AggregateBuilder(rng.choice([200, 2_000, 50 * 1024]))
            while builder.try_add(rng.choice(keys), os.urandom(rng.randrange(0, 120))) and len(builder) < 300:
                pass
            data, key = builder.encode(), "outer"
            if index == 7:
                data = data[:-1] + bytes([data[-1] ^ 1])  # bad MD5: kept whole
        raws.append(
            {
                "Data": data,
                "PartitionKey": key,
                "SequenceNumber": str(sequence),
                "ApproximateArrivalTimestamp": ARRIVAL,
            }
        )
    return raws


@pytest.mark.parametrize("seed", range(8))
def test_records_equal_the_reference_with_every_resume_point(seed: int) -> None:
    rng = random.Random(seed)
    keys = [f"device-{rng.randrange(10**6)}" for _ in range(rng.choice([1, 7, 300]))]
    raws = _stream(rng, keys)
    policy = DeaggregationPolicy()
    resume_points: list[StartPosition | None] = [None]
    for raw in rng.sample(raws, 4):
        through = rng.randrange(0, 40)
        resume_points.append(AT_SEQUENCE_NUMBER(raw["SequenceNumber"], skip_through_sub_sequence=through))
    seen_outside = 0
    for skip in resume_points:
        observer = Counts()
        got = records_from_api(
            raws, stream=STREAM, shard_id=SHARD_ID, shard=SHARD, skip=skip, observer=observer
        )
        expected, outside = _reference(raws, skip, policy)
        assert got == expected
        assert [type(record) for record in got] == [ConsumedRecord] * len(expected)
        assert observer.counts["records_outside_shard_range"] == outside
        seen_outside += outside
    if len(keys) > 1:
        assert seen_outside > 0  # the range check was exercised (keys on both sides of the split)


def test_fast_path_records_are_regular_frozen_records() -> None:
    builder = AggregateBuilder(50 * 1024)
    for index in range(3):
        builder.try_add(f"k{index}", b"payload-%d" % index)
    raw = {"Data": builder.encode(), "PartitionKey": "k0", "SequenceNumber": "12345"}
    records = records_from_api([raw], stream=STREAM, shard_id=SHARD_ID)
    record = records[2]
    assert type(record) is ConsumedRecord and type(record.position) is KinesisPosition
    assert record == ConsumedRecord(b"payload-2", "k2", KinesisPosition(STREAM, SHARD_ID, "12345", 2))
    assert hash(record.position) == hash(KinesisPosition(STREAM, SHARD_ID, "12345", 2))
    assert record.identity == f"{STREAM}/{SHARD_ID}/12345/2"
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.data = b"changed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.position.sub_sequence_number = 0  # type: ignore[misc]
    assert "payload" not in repr(record)


def test_plain_records_are_regular_frozen_records_too() -> None:
    raw = {
        "Data": b"plain-payload",
        "PartitionKey": "p",
        "SequenceNumber": "9",
        "ApproximateArrivalTimestamp": ARRIVAL,
    }
    [record] = records_from_api([raw], stream=STREAM, shard_id=SHARD_ID)
    assert type(record) is ConsumedRecord and type(record.position) is KinesisPosition
    assert record == ConsumedRecord(b"plain-payload", "p", KinesisPosition(STREAM, SHARD_ID, "9"), ARRIVAL)
    assert hash(record.position) == hash(KinesisPosition(STREAM, SHARD_ID, "9"))
    assert (record.explicit_hash_key, record.event_id, record.headers, record.event_id_verified) == (
        None,
        None,
        None,
        False,
    )
    assert record.identity == f"{STREAM}/{SHARD_ID}/9/0"
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.partition_key = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.position.sequence_number = "10"  # type: ignore[misc]
    assert "plain-payload" not in repr(record)


def test_a_refused_aggregate_is_passed_on_whole_and_range_checked_by_its_own_key() -> None:
    builder = AggregateBuilder(50 * 1024)
    for index in range(12):
        builder.try_add(f"k{index}", b"x")
    outer_key = next(f"o{i}" for i in range(1000) if partition_key_hash(f"o{i}") >= HALF)  # outside SHARD
    raw = {"Data": builder.encode(), "PartitionKey": outer_key, "SequenceNumber": "777"}
    observer = Counts()
    [refused] = records_from_api(
        [raw],
        stream=STREAM,
        shard_id=SHARD_ID,
        shard=SHARD,
        observer=observer,
        policy=DeaggregationPolicy(max_user_records=11),
    )
    assert isinstance(refused, RefusedRecord) and isinstance(refused.refusal, AggregateRefusedError)
    assert refused.position == KinesisPosition(STREAM, SHARD_ID, "777")
    assert refused.data == raw["Data"]
    assert observer.counts["records_outside_shard_range"] == 1
    # resuming past its first sub-record skips it, as it skipped the sub-records it stood for
    assert (
        records_from_api(
            [raw],
            stream=STREAM,
            shard_id=SHARD_ID,
            skip=AT_SEQUENCE_NUMBER("777", skip_through_sub_sequence=0),
            policy=DeaggregationPolicy(max_user_records=11),
        )
        == []
    )


def test_aggregation_off_passes_aggregates_whole() -> None:
    builder = AggregateBuilder(50 * 1024)
    builder.try_add("k", b"v")
    data = builder.encode()
    assert data.startswith(MAGIC)
    [record] = records_from_api(
        [{"Data": data, "PartitionKey": "p", "SequenceNumber": "5"}],
        stream=STREAM,
        shard_id=SHARD_ID,
        policy=DeaggregationPolicy(deaggregate=False),
    )
    assert record == ConsumedRecord(data, "p", KinesisPosition(STREAM, SHARD_ID, "5"))
