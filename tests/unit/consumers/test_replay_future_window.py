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


class _LiveShard:
    """One shard whose records arrive while it is read; the reader's sleeps cost no real time."""

    def __init__(self, arrivals: list[datetime]) -> None:
        self.arrivals = list(arrivals)
        self.empty_answers = 0
        self.later: list[datetime] = []

    async def get_shard_iterator(self, **_: Any) -> dict[str, Any]:
        return {"ShardIterator": "0"}

    async def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        index = int(ShardIterator)
        records = [
            {"SequenceNumber": str(n), "PartitionKey": "k", "Data": b"x", "ApproximateArrivalTimestamp": t}
            for n, t in enumerate(self.arrivals[index:], start=100 + index)
        ]
        following = str(len(self.arrivals))
        if not records:
            self.empty_answers += 1
            if self.empty_answers == 3:  # caught up three times, then more arrive
                self.arrivals += self.later
        return {"Records": records, "NextShardIterator": following, "MillisBehindLatest": 0}


class _FakeTime:
    """Sleeping moves this clock on at once (the read budget and back-offs cost no real time)."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_a_window_ending_in_the_future_is_read_until_its_end_not_until_the_first_tip() -> None:
    now = datetime.now(UTC)
    end = now + timedelta(hours=1)
    shard = _LiveShard([now - timedelta(minutes=2), now - timedelta(minutes=1)])
    shard.later = [now + timedelta(minutes=30), end + timedelta(seconds=1)]  # one inside, one past
    fake = _FakeTime()
    reader = KinesisRangeReader(
        shard, "s", KinesisRange(start_time=now - timedelta(minutes=5), end_time=end),
        shard_ids=["shardId-000000000000"], clock=fake.clock, sleep=fake.sleep,
    )  # fmt: skip
    read: list[str] = []
    async with asyncio.timeout(10):
        async for records, _ in reader.read("shardId-000000000000", None):
            read += [record.position.sequence_number for record in records]  # type: ignore[attr-defined]
    # before: finished at the first caught-up answer, so the record arriving at +30 min, inside
    # the window, was never read (and the partition was checkpointed SHARD_END)
    assert read == ["100", "101", "102"]
    assert shard.empty_answers >= 3
