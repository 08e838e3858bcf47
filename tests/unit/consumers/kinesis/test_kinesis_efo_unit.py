"""FanOutShardReader against an in-memory SubscribeToShard double (unit level)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import botocore.session
import pytest
from botocore.eventstream import ChecksumMismatch
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from consumers.kinesis import LATEST, FanOutShardReader
from consumers.kinesis.config import ReaderConfig
from consumers.kinesis.session import reader_session
from shardline.errors import AccessDeniedError, TransientServiceError

NOW = datetime(2024, 1, 1, tzinfo=UTC)


class _Stream:
    def __init__(self, events: list[dict[str, Any]], *, broken: bool) -> None:
        self._events = events
        self._broken = broken

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        for event in self._events:
            yield event
        if self._broken:
            error = {"Error": {"Code": "InternalFailure", "Message": "stream reset"}}
            raise ClientError(error, "SubscribeToShard")  # type: ignore[arg-type]

    def close(self) -> None:
        return None


class BrokenFirstSubscription:
    """The first subscription breaks before its first event; the second delivers a record
    that arrived in between and ends the (closed) shard."""

    def __init__(self) -> None:
        self.positions: list[dict[str, Any]] = []

    async def subscribe_to_shard(self, **kwargs: Any) -> dict[str, Any]:
        self.positions.append(kwargs["StartingPosition"])
        if len(self.positions) == 1:
            return {"EventStream": _Stream([], broken=True)}
        event = {
            "SubscribeToShardEvent": {
                "Records": [
                    {
                        "SequenceNumber": "1001",
                        "PartitionKey": "k",
                        "Data": b"in-between",
                        "ApproximateArrivalTimestamp": NOW,
                    }
                ],
                "MillisBehindLatest": 0,
                "ChildShards": [
                    {
                        "ShardId": "child",
                        "ParentShards": ["shard-0"],
                        "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "1"},
                    }
                ],
            }
        }
        return {"EventStream": _Stream([event], broken=False)}


async def _no_sleep(seconds: float) -> None:
    return None


async def test_resubscription_before_the_first_event_does_not_skip_to_a_new_latest() -> None:
    client = BrokenFirstSubscription()
    opened_at = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    reader = FanOutShardReader(
        client, "arn:consumer", "s", "shard-0", LATEST, sleep=_no_sleep, wall_clock=lambda: opened_at
    )
    batches = [batch async for batch in reader]
    assert client.positions == [{"Type": "LATEST"}, {"Type": "AT_TIMESTAMP", "Timestamp": opened_at}]
    assert [record.data for batch in batches for record in batch.records] == [b"in-between"]
    assert batches[-1].end_of_shard


class RefusedThenServed(BrokenFirstSubscription):
    """SubscribeToShard answers with the given error codes first, then serves the shard."""

    def __init__(self, *codes: str) -> None:
        super().__init__()
        self.codes = list(codes)

    async def subscribe_to_shard(self, **kwargs: Any) -> dict[str, Any]:
        if self.codes:
            code = self.codes.pop(0)
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, "SubscribeToShard")  # type: ignore[arg-type]
        self.positions.append({"Type": "SKIP"})  # so the parent serves the shard at once, unbroken
        return await super().subscribe_to_shard(**kwargs)


class Recorder:
    def __init__(self) -> None:
        self.names: list[str] = []

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.names.append(name)


async def test_subscribe_retries_resource_in_use_and_throttling_then_reads() -> None:
    client = RefusedThenServed("ResourceInUseException", "ResourceInUseException", "LimitExceededException")
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    observer = Recorder()
    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", sleep=sleep, observer=observer)
    batches = await asyncio.wait_for(_collect(reader), 5)
    assert [record.data for batch in batches for record in batch.records] == [b"in-between"]
    assert observer.names.count("subscribe_resource_in_use") == 2
    assert observer.names.count("subscribe_retries") >= 1
    assert len(sleeps) >= 3


async def test_subscribe_gives_up_on_errors_retrying_cannot_fix() -> None:
    client = RefusedThenServed("AccessDeniedException")
    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", sleep=_no_sleep)
    with pytest.raises(AccessDeniedError):
        await asyncio.wait_for(_collect(reader), 5)


async def _collect(reader: FanOutShardReader) -> list[Any]:
    return [batch async for batch in reader]


class EndsAtOnce:
    """Every subscription's stream ends cleanly without a single event."""

    def __init__(self) -> None:
        self.subscriptions = 0

    async def subscribe_to_shard(self, **kwargs: Any) -> dict[str, Any]:
        self.subscriptions += 1
        return {"EventStream": _Stream([], broken=False)}


async def test_subscriptions_that_end_without_an_event_are_backed_off_and_bounded() -> None:
    client = EndsAtOnce()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(0)

    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", sleep=sleep)
    # before: re-subscribed at once, for ever (11,000 subscriptions a second, no sleep)
    with pytest.raises(TransientServiceError, match="ended early"):
        await asyncio.wait_for(_collect(reader), 5)
    assert client.subscriptions == len(sleeps) + 1 and sleeps  # one back-off between each


class MalformedThenServed(BrokenFirstSubscription):
    """The first subscription's event carries a continuation that is no sequence number."""

    async def subscribe_to_shard(self, **kwargs: Any) -> dict[str, Any]:
        if not self.positions:
            self.positions.append(kwargs["StartingPosition"])
            event = {"SubscribeToShardEvent": {"Records": [], "ContinuationSequenceNumber": "abc"}}
            return {"EventStream": _Stream([event], broken=False)}
        return await super().subscribe_to_shard(**kwargs)


async def test_a_malformed_event_is_a_broken_stream_resubscribed_not_a_value_error() -> None:
    client = MalformedThenServed()
    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", sleep=_no_sleep)
    batches = await asyncio.wait_for(_collect(reader), 5)  # before: ValueError from int("abc")
    assert [record.data for batch in batches for record in batch.records] == [b"in-between"]


class HeartbeatThenReset(BrokenFirstSubscription):
    """An idle shard: each subscription delivers a heartbeat (no records, the continuation)
    and then its connection is reset; after ``resets`` of them the shard is served."""

    def __init__(self, resets: int) -> None:
        super().__init__()
        self.resets = resets

    async def subscribe_to_shard(self, **kwargs: Any) -> dict[str, Any]:
        if self.resets:
            self.resets -= 1
            heartbeat = {"SubscribeToShardEvent": {"Records": [], "ContinuationSequenceNumber": "1000"}}
            return {"EventStream": _Stream([heartbeat], broken=True)}
        self.positions.append({"Type": "SKIP"})  # so the parent serves the shard at once, unbroken
        return await super().subscribe_to_shard(**kwargs)


async def test_resets_between_heartbeats_are_not_consecutive_failures() -> None:
    # An idle shard whose connection is reset now and then (hours apart on AWS): every
    # subscription worked, delivering its heartbeat.  Before, only a batch with records reset
    # the count, so the 11th reset over the reader's life raised TransientServiceError.
    client = HeartbeatThenReset(resets=25)
    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", sleep=_no_sleep)
    batches = await asyncio.wait_for(_collect(reader), 5)
    assert [record.data for batch in batches for record in batch.records] == [b"in-between"]
    assert reader.subscriptions == 26


class CorruptFrameThenServed(BrokenFirstSubscription):
    """The first subscription's bytes fail botocore's frame check (the CRC of a frame cut or
    corrupted on the way); the next serves the shard."""

    async def subscribe_to_shard(self, **kwargs: Any) -> dict[str, Any]:
        if not self.positions:
            self.positions.append(kwargs["StartingPosition"])
            return {"EventStream": _Corrupt()}
        return await super().subscribe_to_shard(**kwargs)


class _Corrupt:
    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        raise ChecksumMismatch(0x1234, 0x4321)
        yield {}  # pragma: no cover - makes this an async generator

    def close(self) -> None:
        return None


async def test_a_corrupt_event_frame_is_a_broken_stream_resubscribed() -> None:
    client = CorruptFrameThenServed()
    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", sleep=_no_sleep)
    batches = await asyncio.wait_for(_collect(reader), 5)  # before: ChecksumMismatch stopped the run
    assert [record.data for batch in batches for record in batch.records] == [b"in-between"]
    assert reader.subscriptions == 2


# --- events whose frames are whole but whose payload is not an event ------------------------------

_EVENT_HEADERS = {":message-type": "event", ":event-type": "SubscribeToShardEvent"}
_RECORD = '{"SequenceNumber": "7", "PartitionKey": "k", "ApproximateArrivalTimestamp": 1'
_CRAFTED = {
    "truncated": b'{"Records": [{"SequenceNumber": "7"',
    "not-an-object": b"[1, 2]",
    "not-utf-8": b"\xff\xfe",
    "records-not-a-list": b'{"Records": 5}',
    "record-not-an-object": b'{"Records": [5]}',
    "record-without-data": ('{"Records": [' + _RECORD + "}]}").encode(),
    "data-not-base64": ('{"Records": [' + _RECORD + ', "Data": "!!!x"}]}').encode(),
    "data-a-number": ('{"Records": [' + _RECORD + ', "Data": 5}]}').encode(),
    "sequence-a-number": b'{"Records": [{"SequenceNumber": 7, "PartitionKey": "k", "Data": "eA=="}]}',
    "arrival-out-of-range": b'{"Records": [{"SequenceNumber": "7", "PartitionKey": "k", "Data": "eA==", '
    b'"ApproximateArrivalTimestamp": 1e300}]}',
    "huge-lag": b'{"Records": [], "MillisBehindLatest": ' + b"9" * 5000 + b"}",
    "child-shards-not-a-list": b'{"Records": [], "ChildShards": 5}',
}


class _WireStream:
    """A subscription's stream of event payloads, parsed as the reader session's client parses
    them; a heartbeat that moves the position follows, as the service would send next."""

    def __init__(self, bodies: list[bytes]) -> None:
        self._bodies = bodies
        self._parser = reader_session().get_component("response_parser_factory").create_parser("json")
        operation = (
            botocore.session.get_session().get_service_model("kinesis").operation_model("SubscribeToShard")
        )
        assert operation.output_shape is not None
        self._shape = operation.output_shape.members["EventStream"]

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        for body in self._bodies:
            message = {"status_code": 200, "headers": _EVENT_HEADERS, "body": body}
            yield await self._parser._event_stream_parser.parse(message, self._shape)

    def close(self) -> None:
        return None


class CraftedThenServed(BrokenFirstSubscription):
    """The first subscription delivers a crafted payload, then a heartbeat past it; the next
    serves the shard."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body

    async def subscribe_to_shard(self, **kwargs: Any) -> dict[str, Any]:
        if not self.positions:
            self.positions.append(kwargs["StartingPosition"])
            heartbeat = b'{"Records": [], "ContinuationSequenceNumber": "2000", "MillisBehindLatest": 0}'
            return {"EventStream": _WireStream([self.body, heartbeat])}
        return await super().subscribe_to_shard(**kwargs)


@pytest.mark.parametrize("body", list(_CRAFTED.values()), ids=list(_CRAFTED))
async def test_an_event_that_is_not_an_event_is_a_broken_stream_resubscribed_where_it_was(
    body: bytes,
) -> None:
    # Before: AttributeError, TypeError, binascii.Error... from botocore's walk of the payload
    # stopped the run as a programming error, or (a payload that is no JSON, a record without
    # data) the event was read as empty and the heartbeat after it skipped its records.
    client = CraftedThenServed(body)
    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", sleep=_no_sleep)
    batches = await asyncio.wait_for(_collect(reader), 5)
    assert [record.data for batch in batches for record in batch.records] == [b"in-between"]
    assert client.positions[:2] == [{"Type": "TRIM_HORIZON"}, {"Type": "TRIM_HORIZON"}]
    assert reader.subscriptions == 2


class AlwaysCrafted:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.subscriptions = 0

    async def subscribe_to_shard(self, **kwargs: Any) -> dict[str, Any]:
        self.subscriptions += 1
        return {"EventStream": _WireStream([self.body])}


async def test_events_that_never_parse_are_bounded_failures() -> None:
    client = AlwaysCrafted(_CRAFTED["record-not-an-object"])
    reader = FanOutShardReader(client, "arn:consumer", "s", "shard-0", sleep=_no_sleep)
    with pytest.raises(TransientServiceError) as raised:
        await asyncio.wait_for(_collect(reader), 5)
    assert isinstance(raised.value.__cause__, ResponseParserError)
    assert client.subscriptions == ReaderConfig().max_transient_retries + 1


class _BuggyStream(_Stream):
    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        raise AttributeError("a bug, not bytes from the network")
        yield {}  # pragma: no cover - makes this an async generator


class BuggyStreamClient:
    async def subscribe_to_shard(self, **kwargs: Any) -> dict[str, Any]:
        return {"EventStream": _BuggyStream([], broken=False)}


async def test_a_programming_error_in_the_stream_still_goes_through_untouched() -> None:
    reader = FanOutShardReader(BuggyStreamClient(), "arn:consumer", "s", "shard-0", sleep=_no_sleep)
    with pytest.raises(AttributeError, match="a bug"):
        await asyncio.wait_for(_collect(reader), 5)
