"""Fan-out consumer registration (``ensure_consumer``) against refusals the service documents.

RegisterStreamConsumer answers LimitExceededException to more than 5 calls a second per
account, to a 6th consumer while 5 are CREATING, and to a 21st consumer of a stream;
DescribeStreamConsumer is limited to 20 calls a second per stream.  A fleet of workers
starting together meets the first two; they pass.  The third does not, and must end with an
error saying so within ``timeout``.  Time is injected: no test waits.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from botocore.exceptions import ClientError

from consumers.kinesis import ensure_consumer
from shardline.errors import ConfigurationError, ResourceNotFoundError
from tests.unit.consumers.kinesis.virtual_time import SteppingTime

STREAM = "arn:aws:kinesis:us-east-1:1:stream/s"


def _refusal(operation: str) -> ClientError:
    error = {"Error": {"Code": "LimitExceededException", "Message": "Rate exceeded"}}
    return ClientError(error, operation)  # type: ignore[arg-type]


class Registrar:
    """Refuses the first ``register_refusals`` registrations and ``describe_refusals``
    descriptions with LimitExceeded; the consumer is CREATING on the first description."""

    def __init__(self, register_refusals: int | None, describe_refusals: int = 0) -> None:
        self.register_refusals = register_refusals
        self.describe_refusals = describe_refusals
        self.registers = 0
        self.describes = 0

    async def register_stream_consumer(self, **_: Any) -> dict[str, Any]:
        self.registers += 1
        if self.register_refusals is None or self.registers <= self.register_refusals:
            raise _refusal("RegisterStreamConsumer")
        return {"Consumer": {"ConsumerStatus": "CREATING", "ConsumerARN": "arn:consumer"}}

    async def describe_stream_consumer(self, **_: Any) -> dict[str, Any]:
        self.describes += 1
        if self.describes <= self.describe_refusals:
            raise _refusal("DescribeStreamConsumer")
        status = "CREATING" if self.describes == self.describe_refusals + 1 else "ACTIVE"
        return {"ConsumerDescription": {"ConsumerStatus": status, "ConsumerARN": "arn:consumer"}}


async def test_registration_and_description_refused_for_rate_are_retried() -> None:
    # before: the first LimitExceeded from RegisterStreamConsumer stopped the worker's start
    client = Registrar(register_refusals=3, describe_refusals=2)
    time = SteppingTime()
    arn = await asyncio.wait_for(
        ensure_consumer(client, STREAM, "c", timeout=120, clock=time.clock, sleep=time.sleep), 5
    )
    assert arn == "arn:consumer"
    assert client.registers == 4 and client.describes == 4
    assert all(0 <= s <= 5.0 for s in time.sleeps)


async def test_a_registration_refused_until_the_timeout_names_the_consumer_limits() -> None:
    client = Registrar(register_refusals=None)  # a 21st consumer: refused for good
    time = SteppingTime()
    with pytest.raises(ConfigurationError, match="at most 20 consumers") as raised:
        await asyncio.wait_for(
            ensure_consumer(client, STREAM, "c", timeout=30, clock=time.clock, sleep=time.sleep), 5
        )
    assert "'c'" in str(raised.value) and "LimitExceededException" in str(raised.value)
    assert time.now < 30 + 5.0  # no attempt starts after the timeout; one back-off at most beyond


def _not_found() -> ClientError:
    error = {"Error": {"Code": "ResourceNotFoundException", "Message": "Consumer c not found"}}
    return ClientError(error, "DescribeStreamConsumer")  # type: ignore[arg-type]


class Deleting:
    """A consumer deregistered just before: registration answers ResourceInUse and the
    description DELETING until ``deleted_after`` seconds (of the fake time) have passed; then
    the description finds nothing and a registration creates the consumer again."""

    def __init__(self, time: SteppingTime, deleted_after: float) -> None:
        self.time = time
        self.deleted_after = deleted_after
        self.registers = 0
        self.describes = 0

    def _deleted(self) -> bool:
        return self.time.now >= self.deleted_after

    async def register_stream_consumer(self, **_: Any) -> dict[str, Any]:
        self.registers += 1
        if not self._deleted():
            error = {"Error": {"Code": "ResourceInUseException", "Message": "Consumer c exists"}}
            raise ClientError(error, "RegisterStreamConsumer")  # type: ignore[arg-type]
        return {"Consumer": {"ConsumerStatus": "CREATING", "ConsumerARN": "arn:consumer-2"}}

    async def describe_stream_consumer(self, **_: Any) -> dict[str, Any]:
        self.describes += 1
        if not self._deleted():
            return {"ConsumerDescription": {"ConsumerStatus": "DELETING", "ConsumerARN": "arn:consumer-1"}}
        if self.registers < 2:
            raise _not_found()
        return {"ConsumerDescription": {"ConsumerStatus": "ACTIVE", "ConsumerARN": "arn:consumer-2"}}


async def test_a_consumer_being_deleted_is_waited_for_and_registered_again() -> None:
    # before: ConfigurationError "is being deleted" at once, though the deletion ends in seconds
    time = SteppingTime()
    client = Deleting(time, deleted_after=12.0)
    arn = await asyncio.wait_for(
        ensure_consumer(client, STREAM, "c", timeout=120, clock=time.clock, sleep=time.sleep), 5
    )
    assert arn == "arn:consumer-2"
    assert client.registers == 2
    assert 12.0 <= time.now < 12.0 + 5.0 + 1.0  # polled, not waited out to the timeout


async def test_a_deletion_that_outlasts_the_timeout_names_the_consumer() -> None:
    time = SteppingTime()
    client = Deleting(time, deleted_after=1000.0)
    with pytest.raises(ConfigurationError, match="still being deleted after 30") as raised:
        await asyncio.wait_for(
            ensure_consumer(client, STREAM, "c", timeout=30, clock=time.clock, sleep=time.sleep), 5
        )
    assert "'c'" in str(raised.value) and "another consumer name" in str(raised.value)
    assert 30 <= time.now < 30 + 5.0
    assert client.registers == 1


class DeletedBetweenCalls:
    """A consumer whose deletion ends between RegisterStreamConsumer's ResourceInUse and the
    DescribeStreamConsumer that follows, ``races`` times in a row; then a registration
    creates it again."""

    def __init__(self, races: int) -> None:
        self.races = races
        self.registers = 0
        self.describes = 0

    async def register_stream_consumer(self, **_: Any) -> dict[str, Any]:
        self.registers += 1
        if self.registers <= self.races:
            error = {"Error": {"Code": "ResourceInUseException", "Message": "Consumer c exists"}}
            raise ClientError(error, "RegisterStreamConsumer")  # type: ignore[arg-type]
        return {"Consumer": {"ConsumerStatus": "CREATING", "ConsumerARN": "arn:consumer-2"}}

    async def describe_stream_consumer(self, **_: Any) -> dict[str, Any]:
        self.describes += 1
        if self.registers <= self.races:
            raise _not_found()  # gone since the registration found it
        return {"ConsumerDescription": {"ConsumerStatus": "ACTIVE", "ConsumerARN": "arn:consumer-2"}}


async def test_a_consumer_deleted_between_registration_and_description_is_registered_again() -> None:
    # before: the description's ResourceNotFoundError stopped the worker's start
    time = SteppingTime()
    client = DeletedBetweenCalls(races=1)
    arn = await asyncio.wait_for(
        ensure_consumer(client, STREAM, "c", timeout=120, clock=time.clock, sleep=time.sleep), 5
    )
    assert arn == "arn:consumer-2"
    assert client.registers == 2


async def test_a_consumer_deleted_between_the_calls_again_and_again_names_the_consumer() -> None:
    time = SteppingTime()
    client = DeletedBetweenCalls(races=1_000)  # another deployment registering and deleting it
    with pytest.raises(ConfigurationError, match="deleted while it was being registered") as raised:
        await asyncio.wait_for(
            ensure_consumer(client, STREAM, "c", timeout=120, clock=time.clock, sleep=time.sleep), 5
        )
    assert "'c'" in str(raised.value)
    assert client.registers == 3  # bounded


class NoStream(DeletedBetweenCalls):
    async def register_stream_consumer(self, **_: Any) -> dict[str, Any]:
        self.registers += 1
        error = {"Error": {"Code": "ResourceNotFoundException", "Message": "Stream s not found"}}
        raise ClientError(error, "RegisterStreamConsumer")  # type: ignore[arg-type]


async def test_a_registration_not_finding_the_stream_is_not_registered_again() -> None:
    time = SteppingTime()
    client = NoStream(races=0)
    with pytest.raises(ResourceNotFoundError):
        await asyncio.wait_for(
            ensure_consumer(client, STREAM, "c", timeout=120, clock=time.clock, sleep=time.sleep), 5
        )
    assert client.registers == 1
