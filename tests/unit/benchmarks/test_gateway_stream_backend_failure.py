"""A streamed answer (SubscribeToShard) whose backend fails half-way must reach the client broken.

Once the gateway has relayed the backend's status line and part of the event stream, the
only honest signal of a backend failure is a broken connection: an error answer written
then lands inside the stream as data, followed by a clean end of the chunked body, so the
subscriber reads garbage and then a stream that looks finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from benchmarks.gateway import KinesisGateway
from tests.unit.benchmarks.fake_backend import serving

FIRST_EVENT = b"E" * 100
_BOUND_S = 10.0


@pytest.fixture
async def failing_backend() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """Streams FIRST_EVENT, then drops its connection once told the client has it."""
    client_has_first_event = asyncio.Event()

    async def subscribe(request: web.Request) -> web.StreamResponse:
        await request.read()
        answer = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream"})
        await answer.prepare(request)
        await answer.write(FIRST_EVENT)
        await asyncio.wait_for(client_has_first_event.wait(), _BOUND_S)
        assert request.transport is not None
        request.transport.abort()
        return answer

    async with serving(subscribe) as url:
        yield url, client_has_first_event


async def _read_until_closed(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """Everything the gateway sent until a reset, a close or a clean end of the chunked body.

    A clean end returns at once: the connection is kept alive after it, so waiting for a
    close would only time out.
    """
    received = b""
    while not received.endswith(b"0\r\n\r\n"):
        try:
            chunk = await reader.read(65536)
        except ConnectionResetError:
            return received, True
        if not chunk:
            return received, False
        received += chunk
    return received, False


async def test_backend_failure_mid_stream_resets_the_subscriber(
    failing_backend: tuple[str, asyncio.Event],
) -> None:
    backend_url, client_has_first_event = failing_backend
    async with KinesisGateway(backend_url) as gateway:
        host, port = gateway.endpoint.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(
                b"POST / HTTP/1.1\r\nHost: kinesis\r\n"
                b"X-Amz-Target: Kinesis_20131202.SubscribeToShard\r\n"
                b"Content-Type: application/x-amz-json-1.1\r\nContent-Length: 2\r\n\r\n{}"
            )
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(FIRST_EVENT), _BOUND_S)
            client_has_first_event.set()
            rest, reset = await asyncio.wait_for(_read_until_closed(reader), _BOUND_S)
        finally:
            writer.close()
    assert head.startswith(b"HTTP/1.1 200")
    assert b"HTTP/1.1" not in rest  # no second answer inside the event stream
    assert not rest.endswith(b"0\r\n\r\n")  # and no clean end of the chunked body
    assert reset
