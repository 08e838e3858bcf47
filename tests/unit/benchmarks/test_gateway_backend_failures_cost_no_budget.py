"""A write the emulator behind the gateway fails costs the shard none of its write budget.

The gateway meters a write before it forwards it.  When the backend then fails the call (or
one entry of it), the stream took nothing; a budget still charged for it throttled the writes
after it that AWS would have taken, and stream-bench reported shard limits that were not hit.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from benchmarks.gateway import KinesisGateway, ManualClock, ShardLimits
from shardline.limits import HASH_KEY_MAX
from tests.unit.benchmarks.fake_backend import serving

STREAM = "s"
SHARD = "shardId-000000000000"
_HEADERS = {"Content-Type": "application/x-amz-json-1.1"}


class Backend:
    """One shard; PutRecord and PutRecords fail (whole, or every entry) until ``healthy``."""

    def __init__(self) -> None:
        self.healthy = False
        self.whole_call_fails = True

    async def handle(self, request: web.Request) -> web.Response:
        operation = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        body = json.loads(await request.read() or b"{}")
        if operation == "ListShards":
            shard = {
                "ShardId": SHARD,
                "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(HASH_KEY_MAX)},
                "SequenceNumberRange": {"StartingSequenceNumber": "1"},
            }
            return web.json_response({"Shards": [shard]}, content_type="application/x-amz-json-1.1")
        written = {"ShardId": SHARD, "SequenceNumber": "2"}
        if operation == "PutRecord":
            if self.healthy:
                return web.json_response(written, content_type="application/x-amz-json-1.1")
            return web.json_response(
                {"__type": "InternalFailure"}, status=500, content_type="application/x-amz-json-1.1"
            )
        if operation == "PutRecords":
            entries = body.get("Records", [])
            if self.healthy:
                results: list[dict[str, Any]] = [written for _ in entries]
            elif self.whole_call_fails:
                return web.json_response(
                    {"__type": "InternalFailure"}, status=500, content_type="application/x-amz-json-1.1"
                )
            else:
                results = [{"ErrorCode": "InternalFailure", "ErrorMessage": "backend"} for _ in entries]
            failed = sum("ErrorCode" in r for r in results)
            return web.json_response(
                {"FailedRecordCount": failed, "Records": results}, content_type="application/x-amz-json-1.1"
            )
        return web.json_response({}, content_type="application/x-amz-json-1.1")


@pytest.fixture
async def backend() -> AsyncIterator[tuple[str, Backend]]:
    state = Backend()
    async with serving(state.handle) as url:
        yield url, state


async def _call(session: aiohttp.ClientSession, endpoint: str, operation: str, body: dict[str, Any]) -> Any:
    headers = {**_HEADERS, "X-Amz-Target": f"Kinesis_20131202.{operation}"}
    async with session.post(endpoint + "/", data=json.dumps(body), headers=headers) as response:
        return response.status, await response.json(content_type=None)


def _entry(n: int) -> dict[str, str]:
    return {"Data": "eA==", "PartitionKey": f"k{n}"}


# A budget of two records a second, on a clock that never moves: whatever the failed writes
# cost is never refilled, so the healthy writes after them show it.
_LIMITS = ShardLimits(write_records_per_sec=2)


async def test_put_record_failed_by_the_backend_is_not_charged(backend: tuple[str, Backend]) -> None:
    url, state = backend
    async with (
        KinesisGateway(url, limits=_LIMITS, clock=ManualClock()) as gateway,
        aiohttp.ClientSession() as s,
    ):
        for n in range(2):
            status, _ = await _call(s, gateway.endpoint, "PutRecord", {"StreamName": STREAM, **_entry(n)})
            assert status == 500
        state.healthy = True
        for n in range(2):
            status, answer = await _call(
                s, gateway.endpoint, "PutRecord", {"StreamName": STREAM, **_entry(n)}
            )
            assert (status, answer.get("ShardId")) == (200, SHARD)


@pytest.mark.parametrize("whole_call_fails", [True, False], ids=["call-failed", "entries-failed"])
async def test_put_records_entries_the_backend_did_not_write_are_not_charged(
    backend: tuple[str, Backend], whole_call_fails: bool
) -> None:
    url, state = backend
    state.whole_call_fails = whole_call_fails
    body = {"StreamName": STREAM, "Records": [_entry(0), _entry(1)]}
    async with (
        KinesisGateway(url, limits=_LIMITS, clock=ManualClock()) as gateway,
        aiohttp.ClientSession() as s,
    ):
        status, answer = await _call(s, gateway.endpoint, "PutRecords", body)
        assert status == (500 if whole_call_fails else 200)
        if not whole_call_fails:
            assert {r["ErrorCode"] for r in answer["Records"]} == {"InternalFailure"}
        state.healthy = True
        status, answer = await _call(s, gateway.endpoint, "PutRecords", body)
        assert status == 200
        assert answer["FailedRecordCount"] == 0
        assert gateway.stats().shards[(STREAM, SHARD)].throttled_records == 0
