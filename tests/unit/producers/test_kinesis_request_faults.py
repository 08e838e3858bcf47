"""PutRecords calls that end badly in ways no emulator produces: every record still gets an outcome.

Each test injects one fault into the client (a ``CancelledError`` nobody sent, an answer that
never comes, an answer that is not an object, an answer naming a shard the listing lacks) or
cancels ``close()`` itself, and checks that every future resolves, ``flush()``/``close()``
return within a bound, and the producer's accounting comes back to zero.
"""

from __future__ import annotations

import asyncio
from typing import Any

from producers import KinesisProducer
from shardline.errors import DeliveryError
from shardline.records import Ack
from tests.unit.producers.fake_kinesis import FakeKinesis

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}
BOUND = 5.0  # seconds: only there so that a hang fails instead of sticking


class CancelledInsideClient(FakeKinesis):
    """Raises ``CancelledError`` from its first PutRecords call, as an HTTP library can when
    its own timeout fires, without anyone cancelling the request."""

    def __init__(self) -> None:
        super().__init__()
        self.raised = False

    async def put_records(self, **kwargs: Any) -> dict[str, Any]:
        if not self.raised:
            self.raised = True
            self.calls.append(kwargs["Records"])
            raise asyncio.CancelledError
        return await super().put_records(**kwargs)


async def test_a_cancelled_error_from_the_client_is_a_failed_call_and_is_retried() -> None:
    fake = CancelledInsideClient()
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        futures = [await producer.send(b"x", partition_key=f"k{i}") for i in range(5)]
        await asyncio.wait_for(producer.flush(), BOUND)
        assert producer.buffered == (0, 0)
    acks = [future.result() for future in futures]
    assert all(isinstance(ack, Ack) for ack in acks)
    assert len(fake.calls) >= 2  # the cancelled call, then the retry that wrote them
    assert fake.written  # written once the call was retried


class NeverAnswers(FakeKinesis):
    """An injected client without timeouts whose PutRecords calls never return."""

    async def put_records(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs["Records"])
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_an_unanswered_call_ends_when_its_records_outlive_their_time_to_live() -> None:
    fake = NeverAnswers()
    producer = KinesisProducer("s", client=fake, record_ttl=0.2, **FAST)
    await producer.start()
    future = await producer.send(b"x", partition_key="k")
    batch = await producer.send_many([b"y"] * 3, ["a", "b", "c"])
    await asyncio.wait_for(producer.flush(), BOUND)  # before: waited on the client for ever
    error = future.exception()
    assert isinstance(error, DeliveryError)
    assert "time to live" in str(error)
    assert len((await batch).failed) == 3
    assert producer.buffered == (0, 0)
    await asyncio.wait_for(producer.close(), BOUND)


async def test_close_cancelled_by_its_caller_fails_what_is_pending_and_stops_the_requests() -> None:
    fake = NeverAnswers()
    producer = KinesisProducer("s", client=fake, record_ttl=60.0, **FAST)
    await producer.start()
    future = await producer.send(b"x", partition_key="k")
    while not fake.calls:  # the request is in flight
        await asyncio.sleep(0)
    closing = asyncio.create_task(producer.close())
    done, _ = await asyncio.wait([closing], timeout=0.05)
    assert not done  # close waits for the unanswered request, as it should
    closing.cancel()
    finished, _ = await asyncio.wait([closing], timeout=BOUND)  # before: never returned
    assert finished and closing.cancelled()
    error = future.exception()
    assert isinstance(error, DeliveryError)
    assert "cancelled" in str(error)
    assert not producer._in_flight


class NotAnObject(FakeKinesis):
    """Answers its first PutRecords call with ``None`` (a body that parses to no object)."""

    async def put_records(self, **kwargs: Any) -> Any:
        if not self.calls:
            self.calls.append(kwargs["Records"])
            return None
        return await super().put_records(**kwargs)


async def test_an_answer_that_is_not_an_object_is_retried_not_fatal() -> None:
    fake = NotAnObject()
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        future = await producer.send(b"x", partition_key="k")
        ack = await asyncio.wait_for(future, BOUND)  # before: the request task died with the producer
        later = await producer.send(b"y", partition_key="k")
        await asyncio.wait_for(later, BOUND)
    assert isinstance(ack, Ack)
    assert len(fake.written) == 2


class AnswersWithUnlistedShard(FakeKinesis):
    """Writes every entry, but names a shard that ListShards does not list (as an endpoint
    can just after a split, or a faulty one always)."""

    async def put_records(self, **kwargs: Any) -> dict[str, Any]:
        answer = await super().put_records(**kwargs)
        for result in answer["Records"]:
            if "ShardId" in result:
                result["ShardId"] = "shardId-000000000099"
        return answer

    async def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        self.listings = getattr(self, "listings", 0) + 1
        return await super().list_shards(**kwargs)


async def test_answers_naming_an_unlisted_shard_are_retried_a_bounded_number_of_times() -> None:
    fake = AnswersWithUnlistedShard(shards=1)  # one aggregate, which the answer misplaces
    attempts = 3
    async with KinesisProducer("s", client=fake, max_attempts=attempts, record_ttl=30.0, **FAST) as producer:
        batch = await producer.send_many([b"x", b"y"], ["k1", "k2"])
        acks = await asyncio.wait_for(batch, BOUND)
    # before: re-sent at once, attempts reset, until the time to live (thousands of copies)
    assert len(acks.failed) == 2
    assert all(isinstance(error, DeliveryError) for error in acks.failed.values())
    assert len(fake.written) == attempts  # the aggregate written, then sent again twice
    assert fake.listings <= attempts + 2
