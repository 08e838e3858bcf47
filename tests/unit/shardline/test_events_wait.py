"""wait_until_set: set, timed out, or cancelled, and never a cancellation lost to the event."""

from __future__ import annotations

import asyncio

import pytest

from shardline.events_wait import wait_until_set

BOUND = 5.0


async def test_an_event_set_meanwhile_or_before_is_reported_set() -> None:
    event = asyncio.Event()
    waiting = asyncio.create_task(wait_until_set(event, 60.0))
    await asyncio.sleep(0)
    event.set()
    assert await asyncio.wait_for(waiting, BOUND) is True
    assert await wait_until_set(event, 0.0) is True  # already set: no wait at all


async def test_a_time_limit_reached_is_reported_unset() -> None:
    assert await asyncio.wait_for(wait_until_set(asyncio.Event(), 0.001), BOUND) is False


async def test_no_limit_waits_for_the_event() -> None:
    event = asyncio.Event()
    waiting = asyncio.create_task(wait_until_set(event, None))
    await asyncio.sleep(0)
    assert not waiting.done()
    event.set()
    assert await asyncio.wait_for(waiting, BOUND) is True


async def test_a_cancellation_in_the_iteration_that_sets_the_event_propagates() -> None:
    # asyncio.wait_for(event.wait(), timeout) returned True here on Python 3.11.
    event = asyncio.Event()
    waiting = asyncio.create_task(wait_until_set(event, 60.0))
    await asyncio.sleep(0)
    event.set()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, BOUND)
