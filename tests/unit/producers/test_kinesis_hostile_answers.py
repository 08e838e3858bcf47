"""PutRecords answers the local emulators never give, and the producer's lifecycle under them.

Each answer is injected by a client double; what is asserted is the producer's promise for
every record: resolved once, as delivered or with a typed error, and the producer alive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from producers import KinesisProducer
from shardline.errors import (
    AuthenticationError,
    DeliveryError,
    KmsError,
    ThrottledError,
    TransientServiceError,
)
from shardline.records import Ack
from tests.unit.producers.fake_kinesis import FakeKinesis, client_error

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}
BOUND = 5.0  # seconds: only there so that a hang fails instead of sticking

_T = TypeVar("_T")

Answer = Callable[[list[dict[str, Any]]], dict[str, Any]]


async def bounded(awaitable: Awaitable[_T]) -> _T:
    return await asyncio.wait_for(awaitable, BOUND)


class Answers(FakeKinesis):
    """Answers the first ``count`` PutRecords calls with ``answer(entries)``, then as Kinesis does."""

    def __init__(self, answer: Answer, count: int) -> None:
        super().__init__()
        self.answer = answer
        self.remaining = count

    async def put_records(self, **kwargs: Any) -> dict[str, Any]:
        if self.remaining:
            self.remaining -= 1
            self.calls.append(kwargs["Records"])
            return self.answer(kwargs["Records"])
        return await super().put_records(**kwargs)


async def test_an_entry_error_whose_message_is_not_a_string_is_retried_not_fatal() -> None:
    # botocore hands a JSON number or list in ErrorMessage through as it is
    fake = Answers(
        lambda entries: {
            "FailedRecordCount": len(entries),
            "Records": [{"ErrorCode": "InternalFailure", "ErrorMessage": 5} for _ in entries],
        },
        count=1,
    )
    async with KinesisProducer("s", client=fake, aggregate=False, **FAST) as producer:
        first = await producer.send(b"x", partition_key="k")
        assert isinstance(await bounded(first), Ack)
        later = await producer.send(b"y", partition_key="k")
        assert isinstance(await bounded(later), Ack)
    assert fake.remaining == 0 and len(fake.written) == 2


async def test_each_entry_of_a_mixed_partial_failure_keeps_its_own_cause() -> None:
    # One answer throttles one entry, fails another internally and refuses a third's KMS key:
    # each record's final error names what happened to that record, not to the first entry.
    codes = {
        "hot": "ProvisionedThroughputExceededException",
        "flaky": "InternalFailure",
        "kms": "KMSAccessDeniedException",
    }
    fake = FakeKinesis(fault=lambda call, entry: codes.get(entry["PartitionKey"]))
    async with KinesisProducer("s", client=fake, aggregate=False, max_attempts=2, **FAST) as producer:
        futures = {key: await producer.send(key.encode(), partition_key=key) for key in [*codes, "fine"]}
        await bounded(producer.flush())
    assert isinstance(futures["fine"].result(), Ack)
    with pytest.raises(KmsError):
        futures["kms"].result()
    for key, cause in (("hot", ThrottledError), ("flaky", TransientServiceError)):
        with pytest.raises(DeliveryError) as caught:
            futures[key].result()
        assert type(caught.value.__cause__) is cause, key
        assert caught.value.attempts == 2
    assert [entry["PartitionKey"] for _, entry in fake.written] == ["fine"]


class Latent(FakeKinesis):
    """Answers after letting the loop run a few times, as a request over a network does."""

    async def put_records(self, **kwargs: Any) -> dict[str, Any]:
        for _ in range(5):
            await asyncio.sleep(0)  # a yield, not a wait for anything
        return await super().put_records(**kwargs)


@pytest.mark.parametrize("aggregate", [False, True])
async def test_flush_returns_while_another_task_keeps_sending(aggregate: bool) -> None:
    # flush() is for the records buffered when it is called: it used to wait for an empty
    # buffer, which a producer fed by another task never has.
    async with KinesisProducer("s", client=Latent(), aggregate=aggregate, **FAST) as producer:
        stop = asyncio.Event()

        async def pump() -> int:
            sent = 0
            while not stop.is_set():
                await producer.send(b"x", partition_key=f"k{sent % 50}")
                sent += 1
                await asyncio.sleep(0)
            return sent

        pumping = asyncio.create_task(pump())
        before = [await producer.send(b"y", partition_key=f"b{i}") for i in range(20)]
        batch = await producer.send_many([b"z"] * 30, [f"m{i}" for i in range(30)])
        try:
            await bounded(producer.flush())
            assert all(future.done() for future in before) and batch.done()
            assert not pumping.done()  # the other task was sending all along
        finally:
            stop.set()
            sent = await bounded(pumping)
        await bounded(producer.flush())
    assert all(isinstance(future.result(), Ack) for future in before)
    assert batch.result().ok
    assert sent > 0


async def test_a_security_token_expiring_mid_run_fails_the_call_at_once_and_the_producer_lives() -> None:
    fake = FakeKinesis()
    async with KinesisProducer("s", client=fake, aggregate=False, **FAST) as producer:
        assert isinstance(await bounded(await producer.send(b"a", partition_key="k")), Ack)
        fake.call_errors.append(client_error("ExpiredTokenException"))
        expired = await producer.send(b"b", partition_key="k")
        with pytest.raises(AuthenticationError):
            await bounded(expired)
        calls = len(fake.calls)
        renewed = await producer.send(b"c", partition_key="k")  # the caller renewed the token
        assert isinstance(await bounded(renewed), Ack)
    assert calls == 2  # the refused call was not retried
    assert [entry["Data"] for _, entry in fake.written] == [b"a", b"c"]
