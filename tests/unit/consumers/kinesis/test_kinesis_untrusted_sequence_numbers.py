"""Sequence numbers in what Kinesis answers are untrusted bytes (unit level).

A GetRecords answer or a SubscribeToShard event whose record carries a ``SequenceNumber``
that is a string but no sequence number (not ASCII digits, or over 128 of them) is not a
Kinesis answer: it is retried or re-subscribed a bounded number of times like the other
malformed answers, then ends the read with a :class:`TransientServiceError` naming the
shard, never with the :class:`ValidationError` a caller's bad start position gets.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from consumers.kinesis import FanOutShardReader, PollingShardReader, ReaderConfig
from consumers.kinesis.reader_bodies import parse_get_records, records_of
from shardline.errors import TransientServiceError
from tests.unit.consumers.kinesis.test_kinesis_efo_unit import NOW, BrokenFirstSubscription
from tests.unit.consumers.kinesis.test_kinesis_polling_unit import FakeKinesis, InstantSleep

BOUND = 5.0  # seconds; every scenario takes milliseconds when nothing hangs
NOT_SEQUENCE_NUMBERS = ["12a4", "", "-5", "١٢٣", "1" * 129]


@pytest.mark.parametrize("sequence_number", NOT_SEQUENCE_NUMBERS)
def test_a_record_without_a_sequence_number_is_not_whole(sequence_number: str) -> None:
    record = {"SequenceNumber": sequence_number, "PartitionKey": "k", "Data": b"x"}
    assert records_of({"Records": [record]}) is None


@pytest.mark.parametrize("sequence_number", NOT_SEQUENCE_NUMBERS)
def test_the_fast_parser_leaves_a_bad_sequence_number_to_botocore(sequence_number: str) -> None:
    record = {
        "SequenceNumber": sequence_number,
        "PartitionKey": "k",
        "Data": "eA==",
        "ApproximateArrivalTimestamp": 1.0,
    }
    assert parse_get_records(json.dumps({"Records": [record], "NextShardIterator": "i"}).encode()) is None


def test_sequence_numbers_up_to_128_digits_are_whole() -> None:
    records = [{"SequenceNumber": s, "PartitionKey": "k", "Data": b"x"} for s in ("0", "9" * 128)]
    assert records_of({"Records": records}) == records


class BadSequenceNumberAnswers(FakeKinesis):
    """The first ``bad`` GetRecords answers carry a record whose sequence number is ``text``."""

    def __init__(self, text: str, bad: int) -> None:
        super().__init__([("a", b"x"), ("b", b"y")])
        self.text = text
        self.bad = bad

    async def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        response = await super().get_records(ShardIterator, Limit)
        if self.get_records_calls <= self.bad:
            response["Records"] = [{"SequenceNumber": self.text, "PartitionKey": "a", "Data": b"z"}]
        return response


@pytest.mark.parametrize("sequence_number", NOT_SEQUENCE_NUMBERS)
async def test_a_polled_answer_with_a_bad_sequence_number_is_retried(sequence_number: str) -> None:
    kinesis = BadSequenceNumberAnswers(sequence_number, bad=1)
    reader = PollingShardReader(kinesis, "s", "shard-0", stop_at_tip=True, sleep=InstantSleep())
    # before: ValidationError from AFTER_SEQUENCE_NUMBER (or ValueError from int()) stopped the run
    records = [r async for batch in reader for r in batch.records]
    assert [record.data for record in records] == [b"x", b"y"]
    assert kinesis.get_records_calls >= 2


async def test_polled_answers_with_bad_sequence_numbers_end_in_a_transient_error_naming_the_shard() -> None:
    kinesis = BadSequenceNumberAnswers("12a4", bad=1_000)
    config = ReaderConfig(max_transient_retries=3)
    reader = PollingShardReader(
        kinesis, "s", "shard-0", stop_at_tip=True, config=config, sleep=InstantSleep()
    )
    with pytest.raises(TransientServiceError, match="shard-0"):
        await asyncio.wait_for(anext(aiter(reader)), BOUND)
    assert kinesis.get_records_calls == 4  # the first call and its three retries


class _Events:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self._events = events

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        for event in self._events:
            yield event

    def close(self) -> None:
        return None


def _event_with(sequence_number: str, continuation: str = "1000") -> dict[str, Any]:
    record = {
        "SequenceNumber": sequence_number,
        "PartitionKey": "k",
        "Data": b"z",
        "ApproximateArrivalTimestamp": NOW,
    }
    return {
        "SubscribeToShardEvent": {
            "Records": [record],
            "MillisBehindLatest": 0,
            "ContinuationSequenceNumber": continuation,
        }
    }


class BadEventsThenServed(BrokenFirstSubscription):
    """The first ``bad`` subscriptions deliver ``event``; the next serves the (closed) shard."""

    def __init__(self, event: dict[str, Any], bad: int) -> None:
        super().__init__()
        self.event = event
        self.bad = bad
        self.subscriptions = 0

    async def subscribe_to_shard(self, **kwargs: Any) -> dict[str, Any]:
        self.subscriptions += 1
        if self.subscriptions <= self.bad:
            return {"EventStream": _Events([self.event])}
        self.positions.append({"Type": "SKIP"})  # so the parent serves the shard at once, unbroken
        return await super().subscribe_to_shard(**kwargs)


async def _no_sleep(seconds: float) -> None:
    return None


async def _read(reader: FanOutShardReader) -> list[bytes]:
    return [record.data async for batch in reader for record in batch.records]


@pytest.mark.parametrize("sequence_number", NOT_SEQUENCE_NUMBERS)
async def test_an_event_with_a_bad_sequence_number_is_resubscribed(sequence_number: str) -> None:
    client = BadEventsThenServed(_event_with(sequence_number), bad=1)
    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", sleep=_no_sleep)
    # before: ValidationError (or ValueError) from the record's sequence number stopped the run
    assert await asyncio.wait_for(_read(reader), BOUND) == [b"in-between"]
    assert client.subscriptions == 2


async def test_an_event_with_a_continuation_over_128_digits_is_resubscribed() -> None:
    client = BadEventsThenServed(_event_with("1000", continuation="1" * 129), bad=1)
    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", sleep=_no_sleep)
    # before: ValidationError from AFTER_SEQUENCE_NUMBER of the continuation stopped the run
    assert await asyncio.wait_for(_read(reader), BOUND) == [b"in-between"]


async def test_events_with_bad_sequence_numbers_end_in_a_transient_error_naming_the_shard() -> None:
    client = BadEventsThenServed(_event_with("12a4"), bad=1_000)
    config = ReaderConfig(max_transient_retries=3)
    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", config=config, sleep=_no_sleep)
    with pytest.raises(TransientServiceError, match="shard-0"):
        await asyncio.wait_for(_read(reader), BOUND)
    assert client.subscriptions == 4  # the first subscription and three re-subscriptions
