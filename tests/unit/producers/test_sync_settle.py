"""The sync facade hands the loop's outcome to the caller's thread-safe future, both ways."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

from producers.sync import _settle_into
from shardline.errors import DeliveryError


async def test_result_and_error_reach_the_callers_future() -> None:
    loop = asyncio.get_running_loop()
    ok: asyncio.Future[int] = loop.create_future()
    bad: asyncio.Future[int] = loop.create_future()
    ok_target: concurrent.futures.Future[int] = concurrent.futures.Future()
    bad_target: concurrent.futures.Future[int] = concurrent.futures.Future()
    _settle_into(ok, ok_target)
    _settle_into(bad, bad_target)
    ok.set_result(7)
    bad.set_exception(DeliveryError("gave up", attempts=3))
    # gather's own callbacks were added after _settle_into's, so they run after them
    await asyncio.gather(ok, bad, return_exceptions=True)
    assert ok_target.result(timeout=0) == 7
    with pytest.raises(DeliveryError):
        bad_target.result(timeout=0)


async def test_cancelling_the_callers_future_cancels_the_loops() -> None:
    loop = asyncio.get_running_loop()
    source: asyncio.Future[int] = loop.create_future()
    target: concurrent.futures.Future[int] = concurrent.futures.Future()
    _settle_into(source, target)
    assert target.cancel()
    await asyncio.wait_for(asyncio.shield(_cancelled(source)), 5)
    assert source.cancelled()


async def _cancelled(future: asyncio.Future[int]) -> None:
    with pytest.raises(asyncio.CancelledError):
        await future
