"""A start time that has passed by this machine's clock but not yet by the service's.

Kinesis refuses an AT_TIMESTAMP iterator in the future by its own clock ("Timestamp cannot be
in the future", InvalidArgumentException). Asked for a time that began a moment ago here, a
service whose clock runs a little behind refused it: ``replay plan`` then failed the whole plan
on a window that had just begun (seen against kinesis-mock), and a polling or fan-out reader
started "now" or at a window's start stopped with a bad-request error. Within the clock-skew tolerance such a
refusal passes with time: the planner starts that window by time, the reader asks again. Further
back it is a real bad request and still surfaces as one.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from consumers.kinesis import FanOutShardReader, PollingShardReader
from consumers.kinesis.positions import AT_TIMESTAMP, CLOCK_SKEW_TOLERANCE
from consumers.replay.plan import plan_kinesis
from shardline.errors import InvalidRequestError
from tests.unit.consumers.kinesis.test_kinesis_efo_unit import _Stream
from tests.unit.consumers.kinesis.test_kinesis_polling_unit import FakeKinesis, InstantSleep

BOUND = 5.0


def _in_the_future() -> ClientError:
    return ClientError(
        {"Error": {"Code": "InvalidArgumentException", "Message": "Timestamp cannot be in the future"}},
        "GetShardIterator",
    )


class ClockBehind(FakeKinesis):
    """Refuses the first ``refusals`` AT_TIMESTAMP requests as in the future, then answers."""

    def __init__(self, refusals: int) -> None:
        super().__init__([("a", b"x"), ("b", b"y")])
        self.refusals = refusals
        self.asked: list[datetime] = []

    async def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        if kwargs["ShardIteratorType"] == "AT_TIMESTAMP":
            self.asked.append(kwargs["Timestamp"])
            if len(self.asked) <= self.refusals:
                raise _in_the_future()
            return {"ShardIterator": "0"}
        return await super().get_shard_iterator(**kwargs)


async def _read(kinesis: FakeKinesis, start: datetime) -> list[bytes]:
    reader = PollingShardReader(
        kinesis, "s", "shard-0", AT_TIMESTAMP(start), stop_at_tip=True, sleep=InstantSleep()
    )

    async def read() -> list[bytes]:
        return [record.data async for batch in reader for record in batch.records]

    return await asyncio.wait_for(read(), BOUND)


async def test_the_reader_asks_again_for_a_start_the_service_has_not_reached() -> None:
    kinesis = ClockBehind(refusals=2)
    start = datetime.now(UTC) - timedelta(milliseconds=300)
    assert await _read(kinesis, start) == [b"x", b"y"]
    assert kinesis.asked == [start, start, start]  # the same start time, not one moved on


async def test_the_reader_surfaces_a_refusal_of_a_start_well_in_the_past() -> None:
    kinesis = ClockBehind(refusals=1)
    start = datetime.now(UTC) - CLOCK_SKEW_TOLERANCE - timedelta(minutes=1)
    with pytest.raises(InvalidRequestError):
        await _read(kinesis, start)
    assert len(kinesis.asked) == 1  # a bad request is not retried


async def test_the_planner_starts_by_time_a_window_the_service_has_not_reached() -> None:
    kinesis = ClockBehind(refusals=1)
    start = datetime.now(UTC) - timedelta(milliseconds=300)
    slices = await plan_kinesis(kinesis, "s", start, start + timedelta(seconds=2), 1, shard_ids=["shard-0"])
    (unit,) = [unit for piece in slices for unit in piece.units]
    assert kinesis.asked == [start]
    assert unit.start_time == start.isoformat() and unit.start_sequence is None


async def test_the_planner_surfaces_a_refusal_of_a_window_well_in_the_past() -> None:
    kinesis = ClockBehind(refusals=1)
    start = datetime.now(UTC) - CLOCK_SKEW_TOLERANCE - timedelta(hours=1)
    with pytest.raises(InvalidRequestError):
        await plan_kinesis(kinesis, "s", start, start + timedelta(minutes=1), 1, shard_ids=["shard-0"])


class FanOutClockBehind:
    """SubscribeToShard refusing the first ``refusals`` AT_TIMESTAMP starts as in the future."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.positions: list[dict[str, Any]] = []

    async def subscribe_to_shard(self, **kwargs: Any) -> dict[str, Any]:
        self.positions.append(kwargs["StartingPosition"])
        if len(self.positions) <= self.refusals:
            raise ClientError(
                {"Error": {"Code": "InvalidArgumentException", "Message": "in the future"}},
                "SubscribeToShard",
            )
        event = {
            "SubscribeToShardEvent": {
                "Records": [
                    {
                        "SequenceNumber": "1001",
                        "PartitionKey": "k",
                        "Data": b"x",
                        "ApproximateArrivalTimestamp": datetime.now(UTC),
                    }
                ],
                "MillisBehindLatest": 0,
                "ChildShards": [  # the shard's end: the read is over
                    {
                        "ShardId": "child",
                        "ParentShards": ["shard-0"],
                        "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "1"},
                    }
                ],
            }
        }
        return {"EventStream": _Stream([event], broken=False)}


async def _fan_out(client: FanOutClockBehind, start: datetime) -> list[bytes]:
    reader = FanOutShardReader(
        client, "arn:consumer", "s", "shard-0", AT_TIMESTAMP(start), sleep=InstantSleep()
    )

    async def read() -> list[bytes]:
        return [record.data async for batch in reader for record in batch.records]

    return await asyncio.wait_for(read(), BOUND)


async def test_the_fan_out_reader_subscribes_again_to_a_start_the_service_has_not_reached() -> None:
    client = FanOutClockBehind(refusals=2)
    start = datetime.now(UTC) - timedelta(milliseconds=300)
    assert await _fan_out(client, start) == [b"x"]
    assert client.positions == [{"Type": "AT_TIMESTAMP", "Timestamp": start}] * 3


async def test_the_fan_out_reader_surfaces_a_refusal_of_a_start_well_in_the_past() -> None:
    client = FanOutClockBehind(refusals=1)
    with pytest.raises(InvalidRequestError):
        await _fan_out(client, datetime.now(UTC) - CLOCK_SKEW_TOLERANCE - timedelta(minutes=1))
    assert len(client.positions) == 1
