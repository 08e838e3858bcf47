"""The Kinesis producer's background work has an owner: nothing hangs, nothing is dropped.

Each test makes one background task or user callback fail (through public parameters where
possible, injected where not) and checks that ``flush()``/``close()`` return or raise the
cause within a bound, and that every pending future is resolved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

from producers import KinesisProducer, keys
from shardline.errors import (
    BackgroundTaskError,
    ClosedError,
    DeliveryError,
    InvalidPartitionKeyError,
    SerializationError,
    ThrottledError,
    TransientServiceError,
)
from shardline.metrics import GuardedObserver
from shardline.records import Ack, Record
from tests.unit.producers.fake_kinesis import FakeKinesis, client_error

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}
BOUND = 5.0  # seconds: generous, only there so that a hang fails instead of sticking

_T = TypeVar("_T")


async def bounded(awaitable: Awaitable[_T]) -> _T:
    return await asyncio.wait_for(awaitable, BOUND)


def split_under_the_producer(fake: FakeKinesis) -> None:
    """Split the fake's only shard without telling the producer: its map is now stale."""
    half = 2**127
    parent = fake.shards[0]
    parent["SequenceNumberRange"]["EndingSequenceNumber"] = "99"
    fake.shards += [
        {
            "ShardId": "left",
            "ParentShardId": parent["ShardId"],
            "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(half - 1)},
            "SequenceNumberRange": {"StartingSequenceNumber": "100"},
        },
        {
            "ShardId": "right",
            "ParentShardId": parent["ShardId"],
            "HashKeyRange": {"StartingHashKey": str(half), "EndingHashKey": str(2**128 - 1)},
            "SequenceNumberRange": {"StartingSequenceNumber": "100"},
        },
    ]


class RaisingObserver:
    def __init__(self) -> None:
        self.calls = 0

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.calls += 1
        raise RuntimeError("observer bug")


async def test_a_raising_observer_never_kills_the_sender() -> None:
    observer = RaisingObserver()
    fake = FakeKinesis()
    async with KinesisProducer("s", client=fake, observer=observer, **FAST) as producer:
        singles = [await producer.send(b"x", partition_key=f"k{i}") for i in range(20)]
        batch = await producer.send_many([Record(b"y", partition_key=f"b{i}") for i in range(50)])
        await bounded(producer.flush())
        guarded = producer._observer
    assert all(isinstance(f.result(), Ack) for f in singles)
    assert (await batch).ok
    assert observer.calls > 0
    assert isinstance(guarded, GuardedObserver) and guarded.failures == observer.calls


async def test_put_records_raising_a_programming_error_fails_everything_pending() -> None:
    fake = FakeKinesis()
    fake.call_errors.append(TypeError("client bug"))
    producer = KinesisProducer("s", client=fake, aggregate=False, **FAST)
    await producer.start()
    singles = [await producer.send(b"x", partition_key=f"k{i}") for i in range(5)]
    batch = await producer.send_many([Record(b"y", partition_key=f"b{i}") for i in range(7)])
    with pytest.raises(BackgroundTaskError) as caught:
        await bounded(producer.flush())
    assert isinstance(caught.value.__cause__, TypeError)
    for future in singles:
        assert future.done()
        with pytest.raises(BackgroundTaskError):
            future.result()
    acks = await bounded(batch)
    assert len(acks.failed) == 7 and all(e is caught.value for e in acks.failed.values())
    assert producer.buffered == (0, 0)
    with pytest.raises(BackgroundTaskError):
        await producer.send(b"late", partition_key="k")
    with pytest.raises(BackgroundTaskError):
        await bounded(producer.close())
    await bounded(producer.close())  # a second close is quiet


async def test_the_sender_dying_fails_pending_futures_and_flush_raises_the_cause() -> None:
    fake = FakeKinesis()
    producer = KinesisProducer("s", client=fake, linger=60, rate_limit_percent=None)
    await producer.start()
    future = await producer.send(b"x", partition_key="k")
    assert producer._acc is not None

    def broken_take(*args: Any, **kwargs: Any) -> Any:  # injected: a bug in the sender loop
        raise RuntimeError("sender bug")

    producer._acc.take = broken_take  # type: ignore[method-assign]
    with pytest.raises(BackgroundTaskError) as caught:
        await bounded(producer.flush())
    assert isinstance(caught.value.__cause__, RuntimeError)
    with pytest.raises(BackgroundTaskError):
        await bounded(future)
    with pytest.raises(BackgroundTaskError):
        await bounded(producer.close())


async def test_the_sender_cancelled_from_outside_is_noticed() -> None:
    producer = KinesisProducer("s", client=FakeKinesis(), linger=60, rate_limit_percent=None)
    await producer.start()
    future = await producer.send(b"x", partition_key="k")
    assert producer._sender is not None
    producer._sender.cancel()
    with pytest.raises(BackgroundTaskError):
        await bounded(future)
    with pytest.raises(BackgroundTaskError):
        await bounded(producer.close())


async def test_a_sender_cancelled_in_the_iteration_that_wakes_it_still_fails_the_producer() -> None:
    # Python 3.11's wait_for returned normally when the cancellation and the wake-up arrived
    # together: the sender went on as if nothing happened and its death was never surfaced.
    producer = KinesisProducer("s", client=FakeKinesis(), **FAST)
    await producer.start()
    for _ in range(3):
        await asyncio.sleep(0)  # the sender has made its first pass and waits to be woken
    assert producer._sender is not None and producer._wakeup is not None
    producer._wakeup.set()
    producer._sender.cancel()
    sender = producer._sender
    with pytest.raises(asyncio.CancelledError):
        await bounded(sender)
    with pytest.raises(BackgroundTaskError, match="cancelled"):
        await producer.send(b"x", partition_key="k")
    with pytest.raises(BackgroundTaskError, match="cancelled"):
        await bounded(producer.close())


async def test_a_waiting_sender_sees_the_failure_instead_of_waiting_for_space() -> None:
    fake = FakeKinesis()
    fake.gate = asyncio.Event()  # requests hang until the gate opens
    producer = KinesisProducer("s", client=fake, buffer_max_records=2, aggregate=False, **FAST)
    await producer.start()
    first = [await producer.send(b"x", partition_key=f"k{i}") for i in range(2)]
    blocked = asyncio.create_task(producer.send(b"x", partition_key="k3"))
    await asyncio.sleep(0)
    assert producer._sender is not None
    producer._sender.cancel()
    with pytest.raises(BackgroundTaskError):
        await bounded(blocked)
    for future in first:
        with pytest.raises(BackgroundTaskError):
            await bounded(future)
    with pytest.raises(BackgroundTaskError):
        await bounded(producer.close())


async def test_refresh_failing_while_misplaced_aggregates_are_replanned() -> None:
    fake = FakeKinesis(shards=1)
    producer = KinesisProducer("s", client=fake, **FAST)
    await producer.start()
    split_under_the_producer(fake)

    async def throttled_list_shards(**kwargs: Any) -> dict[str, Any]:
        raise client_error("LimitExceededException")

    fake.list_shards = throttled_list_shards  # type: ignore[method-assign]
    futures = [await producer.send(b"v", partition_key=f"k{i}") for i in range(40)]
    await bounded(producer.flush())
    errors = [f.exception() for f in futures]
    assert all(isinstance(e, DeliveryError) and e.retriable for e in errors)
    assert all(isinstance(e.__cause__, ThrottledError) for e in errors if e is not None)
    assert producer.buffered == (0, 0)
    await bounded(producer.close())  # the producer itself is still healthy


async def test_refresh_raising_a_programming_error_during_replanning_fails_the_producer() -> None:
    fake = FakeKinesis(shards=1)
    producer = KinesisProducer("s", client=fake, **FAST)
    await producer.start()
    split_under_the_producer(fake)

    async def broken_list_shards(**kwargs: Any) -> dict[str, Any]:
        raise AttributeError("client bug")

    fake.list_shards = broken_list_shards  # type: ignore[method-assign]
    futures = [await producer.send(b"v", partition_key=f"k{i}") for i in range(10)]
    with pytest.raises(BackgroundTaskError) as caught:
        await bounded(producer.flush())
    assert isinstance(caught.value.__cause__, AttributeError)
    assert all(isinstance(f.exception(), BackgroundTaskError) for f in futures)
    with pytest.raises(BackgroundTaskError):
        await bounded(producer.close())


async def test_periodic_refresh_task_dying_fails_the_producer() -> None:
    fake = FakeKinesis()
    now = [0.0]
    producer = KinesisProducer(
        "s", client=fake, clock=lambda: now[0], linger=60, shard_refresh_interval=10, rate_limit_percent=None
    )
    await producer.start()

    async def broken_list_shards(**kwargs: Any) -> dict[str, Any]:
        raise KeyError("Shards")

    fake.list_shards = broken_list_shards  # type: ignore[method-assign]
    future = await producer.send(b"x", partition_key="k")  # lingers: the clock is frozen
    now[0] = 11.0  # the refresh is due; the next send wakes the sender, which starts it
    await producer.send(b"y", partition_key="k2")
    with pytest.raises(BackgroundTaskError) as caught:
        await bounded(future)
    assert isinstance(caught.value.__cause__, KeyError)
    with pytest.raises(BackgroundTaskError):
        await bounded(producer.flush())
    with pytest.raises(BackgroundTaskError):
        await bounded(producer.close())


async def test_close_with_timeout_fails_what_is_still_pending_and_returns() -> None:
    fake = FakeKinesis()
    fake.gate = asyncio.Event()  # the service never answers
    producer = KinesisProducer("s", client=fake, **FAST)
    await producer.start()
    futures = [await producer.send(b"x", partition_key=f"k{i}") for i in range(3)]
    batch = await producer.send_many([Record(b"y", partition_key=f"b{i}") for i in range(4)])
    await bounded(producer.close(timeout=0.05))
    assert all(isinstance(f.exception(), DeliveryError) for f in futures)
    assert len((await bounded(batch)).failed) == 4
    with pytest.raises(ClosedError):
        await producer.send(b"late", partition_key="k")


async def test_a_raising_serializer_is_that_records_typed_error() -> None:
    def serializer(value: Any) -> bytes:
        raise ValueError("cannot encode")

    async with KinesisProducer("s", client=FakeKinesis(), serializer=serializer, **FAST) as producer:
        with pytest.raises(SerializationError):
            await producer.send({"a": 1}, partition_key="k")
        with pytest.raises(SerializationError):
            await producer.send_many([{"a": 1}])
        ok = await producer.send(b"raw", partition_key="k")  # the producer is unharmed
        await bounded(producer.flush())
    assert isinstance(ok.result(), Ack)
    assert producer.buffered == (0, 0)


async def test_a_raising_key_strategy_is_that_records_typed_error() -> None:
    def strategy(value: Any) -> str:
        return str(value["device"])  # KeyError for records without the field

    async with KinesisProducer("s", client=FakeKinesis(), key_strategy=strategy, **FAST) as producer:
        with pytest.raises(InvalidPartitionKeyError) as caught:
            await producer.send(b"no device field")
        assert isinstance(caught.value.__cause__, TypeError)
        with pytest.raises(InvalidPartitionKeyError):
            await producer.send_many([b"x"])
        ok = await producer.send(b"keyed", partition_key="k")
        await bounded(producer.flush())
    assert isinstance(ok.result(), Ack)
    assert keys.random()  # the built-in strategies are unaffected


class ForeignAnswers(FakeKinesis):
    """Answers the first ``count`` PutRecords calls with ``answer(entries)``, then as Kinesis does."""

    def __init__(self, answer: Any, count: int) -> None:
        super().__init__()
        self.answer = answer
        self.remaining = count

    async def put_records(self, **kwargs: Any) -> dict[str, Any]:
        if self.remaining:
            self.remaining -= 1
            self.calls.append(kwargs["Records"])
            answer: dict[str, Any] = self.answer(kwargs["Records"])
            return answer
        return await super().put_records(**kwargs)


@pytest.mark.parametrize(
    "answer",
    [
        lambda entries: {},  # what botocore makes of a 200 HTML page
        lambda entries: {"Records": "not a list"},
        lambda entries: {"Records": [5] * len(entries)},
        lambda entries: {"Records": [{"ShardId": 1, "SequenceNumber": "1"}] * len(entries)},
        lambda entries: {"Records": [{"ShardId": "shardId-000000000000"}] * len(entries)},
        lambda entries: {"Records": [{"ErrorCode": 7}] * len(entries)},
    ],
    ids=[
        "no-records",
        "records-not-a-list",
        "results-not-objects",
        "shard-not-a-string",
        "no-sequence",
        "bad-code",
    ],
)
async def test_an_answer_that_is_not_a_put_records_response_is_retried_not_fatal(answer: Any) -> None:
    fake = ForeignAnswers(answer, count=2)
    async with KinesisProducer("s", client=fake, aggregate=False, **FAST) as producer:
        singles = [await producer.send(b"x", partition_key=f"k{i}") for i in range(5)]
        batch = await producer.send_many([Record(b"y", partition_key=f"b{i}") for i in range(7)])
        await bounded(producer.flush())
        acks = [f.result() for f in singles]
    assert all(isinstance(ack, Ack) for ack in acks)
    assert (await bounded(batch)).ok
    assert fake.remaining == 0 and len(fake.written) == 12  # each written once, after the answers


async def test_records_never_answered_properly_fail_with_the_reason_and_the_producer_lives() -> None:
    fake = ForeignAnswers(lambda entries: {}, count=3)
    async with KinesisProducer("s", client=fake, aggregate=False, max_attempts=3, **FAST) as producer:
        lost = await producer.send(b"x", partition_key="k")
        with pytest.raises(DeliveryError) as caught:
            await bounded(lost)
        assert isinstance(caught.value.__cause__, TransientServiceError)
        later = await producer.send(b"y", partition_key="k")  # the producer still delivers
        assert isinstance(await bounded(later), Ack)
