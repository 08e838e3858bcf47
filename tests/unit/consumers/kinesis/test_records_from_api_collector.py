"""records_from_api hands the records of a large response to the collector's oldest generation."""

from __future__ import annotations

import gc
import os
from typing import Any

import pytest

from consumers.kinesis import records_from_api
from consumers.kinesis.deaggregate import PROMOTE_MIN_BYTES
from shardline.aggregation import AggregateBuilder
from shardline.records import ConsumedRecord, KinesisPosition

STREAM, SHARD_ID = "orders", "shardId-000000000001"


pytestmark = pytest.mark.usefixtures("collector_enabled")


def _aggregates(total_bytes: int) -> list[dict[str, Any]]:
    raws: list[dict[str, Any]] = []
    size = 0
    while size < total_bytes:
        builder = AggregateBuilder(50 * 1024)
        while builder.try_add(f"device-{len(builder) % 37}", os.urandom(100)):
            pass
        data = builder.encode()
        raws.append({"Data": data, "PartitionKey": "outer", "SequenceNumber": str(1000 + len(raws))})
        size += len(data)
    return raws


def _oldest_generation_ids() -> set[int]:
    return {id(obj) for obj in gc.get_objects(2)}


def test_records_of_a_large_response_are_in_the_oldest_generation_and_unchanged() -> None:
    raws = _aggregates(PROMOTE_MIN_BYTES)
    records = records_from_api(raws, stream=STREAM, shard_id=SHARD_ID)
    oldest = _oldest_generation_ids()
    assert all(id(record) in oldest and id(record.position) in oldest for record in records)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    first = raws[0]["SequenceNumber"]
    assert records[1].position == KinesisPosition(STREAM, SHARD_ID, first, 1)
    assert type(records[1]) is ConsumedRecord


def test_records_of_a_small_response_stay_young() -> None:
    raws = _aggregates(1)
    assert sum(len(raw["Data"]) for raw in raws) < PROMOTE_MIN_BYTES
    gc.collect()
    records = records_from_api(raws, stream=STREAM, shard_id=SHARD_ID)
    oldest = _oldest_generation_ids()
    assert not any(id(record) in oldest for record in records)


def test_records_from_a_one_pass_iterable_are_not_promoted_and_all_delivered() -> None:
    raws = _aggregates(PROMOTE_MIN_BYTES)
    gc.collect()
    records = records_from_api(iter(raws), stream=STREAM, shard_id=SHARD_ID)
    oldest = _oldest_generation_ids()
    assert not any(id(record) in oldest for record in records)
    assert records == records_from_api(raws, stream=STREAM, shard_id=SHARD_ID)
