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
from shardline.errors import ConfigurationError

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


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_registration_and_description_refused_for_rate_are_retried() -> None:
    # before: the first LimitExceeded from RegisterStreamConsumer stopped the worker's start
    client = Registrar(register_refusals=3, describe_refusals=2)
    time = FakeTime()
    arn = await asyncio.wait_for(
        ensure_consumer(client, STREAM, "c", timeout=120, clock=time.clock, sleep=time.sleep), 5
    )
    assert arn == "arn:consumer"
    assert client.registers == 4 and client.describes == 4
    assert all(0 <= s <= 5.0 for s in time.sleeps)


async def test_a_registration_refused_until_the_timeout_names_the_consumer_limits() -> None:
    client = Registrar(register_refusals=None)  # a 21st consumer: refused for good
    time = FakeTime()
    with pytest.raises(ConfigurationError, match="at most 20 consumers") as raised:
        await asyncio.wait_for(
            ensure_consumer(client, STREAM, "c", timeout=30, clock=time.clock, sleep=time.sleep), 5
        )
    assert "'c'" in str(raised.value) and "LimitExceededException" in str(raised.value)
    assert time.now < 30 + 5.0  # no attempt starts after the timeout; one back-off at most beyond
