"""A replay range reaching ahead of now: Kinesis refuses an AT_TIMESTAMP iterator in the future
("Timestamp cannot be in the future"), so neither the planner nor the runner may ask for one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consumers.replay.kinesis_range import KinesisRange, KinesisRangeReader
from consumers.replay.plan import plan_kinesis


class _Refused(Exception):
    """What the fake Kinesis raises where the real one answers."""


class RecordingKinesis:
    """Remembers each GetShardIterator's timestamp; refuses one in the future, as Kinesis does."""

    def __init__(self) -> None:
        self.timestamps: list[datetime] = []

    async def get_shard_iterator(self, **request: Any) -> dict[str, Any]:
        stamp = request["Timestamp"]
        if stamp > datetime.now(UTC):
            raise AssertionError("asked for an AT_TIMESTAMP iterator in the future")
        self.timestamps.append(stamp)
        raise _Refused  # enough: the call's arguments are what this test is about

    async def get_records(self, **_: Any) -> dict[str, Any]:
        return {"Records": []}

    async def list_shards(self, **_: Any) -> dict[str, Any]:
        return {
            "Shards": [
                {
                    "ShardId": "shardId-000000000000",
                    "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(2**128 - 1)},
                    "SequenceNumberRange": {"StartingSequenceNumber": "1"},
                }
            ]
        }


async def test_the_planner_asks_nothing_for_windows_that_have_not_begun() -> None:
    kinesis = RecordingKinesis()
    now = datetime.now(UTC)
    with pytest.raises(_Refused):  # the first window has begun: its call goes out
        await plan_kinesis(kinesis, "s", now - timedelta(hours=1), now + timedelta(hours=3), 2)
    kinesis.timestamps.clear()

    async def first_window_only(**request: Any) -> dict[str, Any]:
        kinesis.timestamps.append(request["Timestamp"])
        return {"ShardIterator": "it"}

    kinesis.get_shard_iterator = first_window_only  # type: ignore[method-assign]
    slices = await plan_kinesis(kinesis, "s", now - timedelta(hours=1), now + timedelta(hours=3), 2)
    assert len(kinesis.timestamps) == 1 and kinesis.timestamps[0] < datetime.now(UTC)
    starts = sorted(unit.start_time for piece in slices for unit in piece.units if unit.start_time)
    assert len(starts) == 2  # both windows planned; the future one starts by time


async def test_the_runner_waits_for_a_window_that_has_not_begun() -> None:
    kinesis = RecordingKinesis()
    slept: list[float] = []
    start = datetime.now(UTC) + timedelta(hours=1)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if seconds > 60:  # the wait for the window: let the fake's "now" be past it
            kinesis.get_shard_iterator = _accepting(kinesis)  # type: ignore[method-assign]

    reader = KinesisRangeReader(
        kinesis,
        "s",
        KinesisRange(start_time=start, end_time=start + timedelta(hours=1)),
        shard_ids=["shardId-000000000000"],
        sleep=sleep,
    )
    with pytest.raises(_Refused):
        await asyncio.wait_for(_first_batch(reader), 5)
    assert slept and 3500 < slept[0] <= 3600  # waited until the window began, then asked
    assert kinesis.timestamps == [start]


def _accepting(kinesis: RecordingKinesis) -> Any:
    async def get_shard_iterator(**request: Any) -> dict[str, Any]:
        kinesis.timestamps.append(request["Timestamp"])
        raise _Refused

    return get_shard_iterator


async def _first_batch(reader: KinesisRangeReader) -> None:
    async for _ in reader.read("shardId-000000000000", None):
        return
