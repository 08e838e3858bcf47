"""The drain benchmark's throughput counts only the records that reached the stream."""

from __future__ import annotations

import asyncio
import types
from typing import Any

import pytest

import producers
from benchmarks.peers import kinesis_drain
from shardline.errors import DeliveryError


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class _HalfExpiringProducer:
    """Takes every record in 1 ms of the fake clock; every second one fails as expired."""

    clock: _Clock

    def __init__(self, stream: str, **options: Any) -> None:
        self.config = types.SimpleNamespace(max_batch_bytes=1, max_in_flight_bytes=1)
        self.drain_rate = None
        self.admission_bytes = 0
        self._sent = 0

    async def __aenter__(self) -> _HalfExpiringProducer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def send(self, data: bytes, partition_key: str) -> asyncio.Future[None]:
        self.clock.now += 0.001
        self._sent += 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._sent % 2:
            future.set_result(None)
        else:
            future.set_exception(DeliveryError("record expired"))
        return future


def test_records_that_expired_are_not_counted_as_throughput(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    _HalfExpiringProducer.clock = clock
    monkeypatch.setattr(kinesis_drain, "time", clock)
    monkeypatch.setattr(producers, "KinesisProducer", _HalfExpiringProducer)
    options = {"record_ttl": 1.0, "admission": "caps"}
    # 1,000 records of 1,000 bytes resolved within one second; half of them expired
    result = asyncio.run(kinesis_drain._fed_run("http://127.0.0.1:1", "s", 1_000_000, 1000, 10, 0, options))
    assert (result["delivered"], result["failed_delivery_error"]) == (500, 500)
    assert result["all_resolved_s"] == 1.0
    assert result["user_mb_per_s"] == 0.5  # 500 delivered records, not the 1,000 fed
