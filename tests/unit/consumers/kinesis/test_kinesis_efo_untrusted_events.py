"""SubscribeToShard events that are whole frames but say what no Kinesis event says (unit level).

A lag beyond the API's Long, child shards without an id or a hash-key range in the key space,
a continuation behind where the reader stands, and subscriptions that end early after a
heartbeat: each is met by a re-subscription from the last good position, bounded and backed
off, never by a bare Python error, a record read twice or a re-subscription at network speed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from consumers.kinesis import AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, FanOutShardReader, StartPosition
from tests.unit.consumers.kinesis.test_kinesis_efo_unit import (
    NOW,
    BrokenFirstSubscription,
    CraftedThenServed,
    _Stream,
)

BOUND = 5.0  # seconds; every scenario takes milliseconds when nothing hangs


async def _no_sleep(seconds: float) -> None:
    return None


async def _collect(reader: FanOutShardReader) -> list[Any]:
    return [batch async for batch in reader]


# --- a lag beyond a Long ------------------------------------------------------------------------


@pytest.mark.parametrize("digits", [20, 400])
async def test_a_lag_beyond_a_long_is_a_broken_stream_resubscribed(digits: int) -> None:
    body = b'{"Records": [], "ContinuationSequenceNumber": "5", "MillisBehindLatest": ' + b"9" * digits + b"}"
    client = CraftedThenServed(body)
    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", sleep=_no_sleep)
    # before: OverflowError (int too large to convert to float) stopped the run at 400 digits;
    # at 20 a lag no shard can have became the reader's millis_behind_latest
    batches = await asyncio.wait_for(_collect(reader), BOUND)
    assert [record.data for batch in batches for record in batch.records] == [b"in-between"]
    assert client.positions[:2] == [{"Type": "TRIM_HORIZON"}, {"Type": "TRIM_HORIZON"}]
    assert reader.millis_behind_latest == 0


# --- child shards that are no shards --------------------------------------------------------------

_RANGE = {"StartingHashKey": "0", "EndingHashKey": "1"}
_BAD_CHILDREN: dict[str, Any] = {
    "no-hash-range": [{"ShardId": "child", "ParentShards": ["shard-0"]}],
    "hash-key-not-decimal": [
        {"ShardId": "child", "HashKeyRange": {"StartingHashKey": "x", "EndingHashKey": "1"}}
    ],
    "hash-key-beyond-the-key-space": [
        {"ShardId": "child", "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(2**128)}}
    ],
    "hash-range-reversed": [
        {"ShardId": "child", "HashKeyRange": {"StartingHashKey": "5", "EndingHashKey": "1"}}
    ],
    "no-shard-id": [{"HashKeyRange": _RANGE}],
    "parents-not-a-list": [{"ShardId": "child", "ParentShards": "shard-0", "HashKeyRange": _RANGE}],
    "parent-not-text": [{"ShardId": "child", "ParentShards": [5], "HashKeyRange": _RANGE}],
    "child-not-an-object": ["child"],
    "not-a-list": {"ShardId": "child"},
}


class BadChildrenThenServed(BrokenFirstSubscription):
    """The first subscription's last event ends the shard with a record and ``children``; the
    next ends it properly (the record again, as it was never delivered)."""

    def __init__(self, children: Any) -> None:
        super().__init__()
        self.children = children

    async def subscribe_to_shard(self, **kwargs: Any) -> dict[str, Any]:
        if not self.positions:
            self.positions.append(kwargs["StartingPosition"])
            event = _final_event(self.children)
            return {"EventStream": _Stream([event], broken=False)}
        return await super().subscribe_to_shard(**kwargs)


def _final_event(children: Any) -> dict[str, Any]:
    record = {"SequenceNumber": "1001", "PartitionKey": "k", "Data": b"in-between"}
    record["ApproximateArrivalTimestamp"] = NOW  # type: ignore[assignment]
    return {"SubscribeToShardEvent": {"Records": [record], "MillisBehindLatest": 0, "ChildShards": children}}


@pytest.mark.parametrize("children", list(_BAD_CHILDREN.values()), ids=list(_BAD_CHILDREN))
async def test_child_shards_that_are_no_shards_are_a_broken_stream_resubscribed_where_it_was(
    children: Any,
) -> None:
    client = BadChildrenThenServed(children)
    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", sleep=_no_sleep)
    # before: KeyError, ValueError or TypeError from building the children stopped the run
    # (and the position had already moved past the event's record)
    batches = await asyncio.wait_for(_collect(reader), BOUND)
    assert [record.data for batch in batches for record in batch.records] == [b"in-between"]
    assert client.positions[:2] == [{"Type": "TRIM_HORIZON"}, {"Type": "TRIM_HORIZON"}]
    assert batches[-1].end_of_shard and [child.shard_id for child in batches[-1].child_shards] == ["child"]


# --- a continuation behind where the reader stands -------------------------------------------------


class ContinuationThenReset(BrokenFirstSubscription):
    """The first subscription's heartbeat carries ``continuation``, then its connection is
    reset; the next serves the shard."""

    def __init__(self, continuation: str) -> None:
        super().__init__()
        self.continuation = continuation

    async def subscribe_to_shard(self, **kwargs: Any) -> dict[str, Any]:
        if not self.positions:
            self.positions.append(kwargs["StartingPosition"])
            heartbeat = {
                "SubscribeToShardEvent": {
                    "Records": [],
                    "ContinuationSequenceNumber": self.continuation,
                    "MillisBehindLatest": 0,
                }
            }
            return {"EventStream": _Stream([heartbeat], broken=True)}
        return await super().subscribe_to_shard(**kwargs)


@pytest.mark.parametrize(
    ("start", "continuation", "resubscribed_at"),
    [
        # started from a checkpoint: a continuation behind it would read 1001-1005 again
        (AFTER_SEQUENCE_NUMBER("1005"), "1000", {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": "1005"}),
        # inside an aggregate: AFTER 1004 would deliver its first four sub-records again
        (
            AT_SEQUENCE_NUMBER("1005", skip_through_sub_sequence=3),
            "1004",
            {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": "1005"},
        ),
        # a continuation ahead is taken, as ever
        (AFTER_SEQUENCE_NUMBER("1005"), "1010", {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": "1010"}),
    ],
    ids=["behind-a-checkpoint", "behind-an-aggregate", "ahead"],
)
async def test_a_continuation_never_moves_the_reader_back(
    start: StartPosition, continuation: str, resubscribed_at: dict[str, Any]
) -> None:
    client = ContinuationThenReset(continuation)
    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", start, sleep=_no_sleep)
    await asyncio.wait_for(_collect(reader), BOUND)
    assert client.positions[:2] == [start.starting_position(), resubscribed_at]


async def test_a_continuation_behind_keeps_the_skip_inside_the_aggregate() -> None:
    start = AT_SEQUENCE_NUMBER("1005", skip_through_sub_sequence=3)
    client = ContinuationThenReset("1004")
    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", start, sleep=_no_sleep)
    await asyncio.wait_for(_collect(reader), BOUND)
    assert reader.resume_position == start  # the served record (1001) lies before it


# --- subscriptions that end early after a heartbeat -----------------------------------------------


class HeartbeatThenEnd(BrokenFirstSubscription):
    """An idle shard whose subscriptions each deliver a heartbeat (the same continuation) and
    then end cleanly, long before their lifetime; after ``ends`` of them the shard is served."""

    def __init__(self, ends: int) -> None:
        super().__init__()
        self.ends = ends
        self.subscriptions = 0

    async def subscribe_to_shard(self, **kwargs: Any) -> dict[str, Any]:
        self.subscriptions += 1
        if self.subscriptions <= self.ends:
            heartbeat = {"SubscribeToShardEvent": {"Records": [], "ContinuationSequenceNumber": "1000"}}
            return {"EventStream": _Stream([heartbeat], broken=False)}
        self.positions.append({"Type": "SKIP"})  # so the parent serves the shard at once, unbroken
        return await super().subscribe_to_shard(**kwargs)


async def test_subscriptions_ending_early_after_a_heartbeat_are_backed_off_not_counted() -> None:
    client = HeartbeatThenEnd(ends=25)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", sleep=sleep)
    # before: re-subscribed at once after each, never sleeping (at network speed, for ever)
    batches = await asyncio.wait_for(_collect(reader), BOUND)
    assert [record.data for batch in batches for record in batch.records] == [b"in-between"]
    assert client.subscriptions == 26
    assert len(sleeps) == 25 and min(sleeps) > 0  # one back-off before each re-subscription


class Scripted(BrokenFirstSubscription):
    """Each subscription in turn: ``"reset"`` (broken before any event) or ``"beat"`` (a
    heartbeat, then a clean early end); after the script the shard is served."""

    def __init__(self, script: list[str]) -> None:
        super().__init__()
        self.script = script

    async def subscribe_to_shard(self, **kwargs: Any) -> dict[str, Any]:
        if self.script:
            if self.script.pop(0) == "reset":
                return {"EventStream": _Stream([], broken=True)}
            heartbeat = {"SubscribeToShardEvent": {"Records": [], "ContinuationSequenceNumber": "1000"}}
            return {"EventStream": _Stream([heartbeat], broken=False)}
        self.positions.append({"Type": "SKIP"})  # so the parent serves the shard at once, unbroken
        return await super().subscribe_to_shard(**kwargs)


async def test_a_subscription_that_worked_and_ended_restarts_the_count_of_failures() -> None:
    # nine failures, a subscription that worked, nine failures: never ten in a row
    client = Scripted(["reset"] * 9 + ["beat"] + ["reset"] * 9)
    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", sleep=_no_sleep)
    # before: the count went on across the subscription that worked; the 11th failure ended
    # the read with TransientServiceError
    batches = await asyncio.wait_for(_collect(reader), BOUND)
    assert [record.data for batch in batches for record in batch.records] == [b"in-between"]
    assert reader.subscriptions == 20
