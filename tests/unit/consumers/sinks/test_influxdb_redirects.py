"""An InfluxDB write answered with a redirect is not a write: the points are not counted
written, the redirect is not followed (no token or points sent on), and the run stops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import web

from consumers._pipeline_write import WriteWorkflow
from consumers.sinks.base import Outcome
from consumers.sinks.deadletter import MemoryDeadLetter
from consumers.sinks.influxdb import InfluxDBSink
from shardline.errors import ResourceNotFoundError, SinkError
from shardline.metrics import NullObserver
from shardline.records import ConsumedRecord, KinesisPosition
from shardline.retry import RetryPolicy

NO_WAIT = RetryPolicy(max_attempts=3, deadline=None, initial_backoff=0.0, max_backoff=0.0)


class _Proxy:
    """Answers every write with a redirect to a sign-in page that answers 200."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.followed: list[str] = []

    async def write(self, request: web.Request) -> web.Response:
        return web.Response(status=self.status, headers={"Location": "/login"})

    async def login(self, request: web.Request) -> web.Response:
        self.followed.append(request.method)
        return web.Response(text="<html>sign in</html>")


@pytest.fixture(params=[301, 302, 307, 308])
async def proxy(request: pytest.FixtureRequest) -> AsyncIterator[tuple[_Proxy, str]]:
    handler = _Proxy(request.param)
    app = web.Application()
    app.router.add_post("/api/v2/write", handler.write)
    app.router.add_route("*", "/login", handler.login)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield handler, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _records(count: int) -> list[ConsumedRecord]:
    arrival = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        ConsumedRecord(b'{"t": 1.5}', "k", KinesisPosition("s", "shardId-0", str(n)), arrival_time=arrival)
        for n in range(1, count + 1)
    ]


async def test_a_redirected_write_is_a_failed_call_not_a_write(proxy: tuple[_Proxy, str]) -> None:
    handler, url = proxy
    sink = InfluxDBSink(url, org="o", bucket="b", token="influx-secret-token")
    try:
        (result,) = await sink.write(_records(1))
    finally:
        await sink.close()
    assert result.outcome is Outcome.CALL_FAILED
    assert isinstance(result.error, ResourceNotFoundError)
    assert "influx-secret-token" not in str(result.error)
    assert handler.followed == []


async def test_a_redirected_write_stops_the_run_with_nothing_dead_lettered(proxy: tuple[_Proxy, str]) -> None:
    handler, url = proxy
    sink = InfluxDBSink(url, org="o", bucket="b")
    dead = MemoryDeadLetter()
    workflow = WriteWorkflow(sink, dead, retry=NO_WAIT, entry_attempts=3, observer=NullObserver())
    records = _records(4)
    resolved = [False] * len(records)
    try:
        with pytest.raises(SinkError, match="cannot be written"):
            await workflow.write(records, [r.position for r in records], resolved)
    finally:
        await sink.close()
    assert dead.entries == {}
    assert not any(resolved)
    assert handler.followed == []
