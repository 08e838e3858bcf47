"""Open SubscribeToShard streams must not leave the gateway's other calls waiting.

A subscription holds its backend connection for up to five minutes.  Relayed through the
gateway's bounded backend pool (64 connections), 64 subscribers took every connection and
any further call (a PutRecords, a ListShards) waited without bound for one to come free.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from benchmarks.gateway import KinesisGateway
from tests.unit.benchmarks.fake_backend import serving

SUBSCRIBERS = 70  # more than the pool the gateway uses for ordinary calls
_BOUND_S = 10.0
_TARGET = "Kinesis_20131202."


@pytest.fixture
async def backend() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """Subscriptions stream one byte and stay open until released; other calls answer at once."""
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        if request.headers.get("X-Amz-Target") != _TARGET + "SubscribeToShard":
            return web.json_response({"StreamNames": []})
        answer = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream"})
        await answer.prepare(request)
        await answer.write(b"e")
        await release.wait()
        await answer.write_eof()
        return answer

    async with serving(handle) as url:
        try:
            yield url, release
        finally:
            release.set()


async def test_a_call_is_answered_while_many_subscriptions_are_open(
    backend: tuple[str, asyncio.Event],
) -> None:
    backend_url, release = backend
    async with (
        KinesisGateway(backend_url) as gateway,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client,
    ):
        subscriptions: list[aiohttp.ClientResponse] = []
        try:
            for _ in range(SUBSCRIBERS):
                response = await asyncio.wait_for(
                    client.post(
                        gateway.endpoint, data=b"{}", headers={"X-Amz-Target": _TARGET + "SubscribeToShard"}
                    ),
                    _BOUND_S,
                )
                subscriptions.append(response)
                assert await asyncio.wait_for(response.content.readexactly(1), _BOUND_S) == b"e"

            async def list_streams() -> tuple[int, bytes]:
                async with client.post(
                    gateway.endpoint, data=b"{}", headers={"X-Amz-Target": _TARGET + "ListStreams"}
                ) as answer:
                    return answer.status, await answer.read()

            status, body = await asyncio.wait_for(list_streams(), _BOUND_S)
            assert status == 200
            assert body == b'{"StreamNames": []}'
        finally:
            release.set()
            for response in subscriptions:
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    await asyncio.wait_for(response.read(), _BOUND_S)
                response.release()
