"""Waiting for an ``asyncio.Event`` with a time limit, without losing a cancellation.

Background loops (the producer's sender, the sink writer's back-off, the bench's pacing)
sleep until either their next deadline or an event that wakes them early.  The obvious
``asyncio.wait_for(event.wait(), timeout)`` has two costs on Python 3.11: it wraps the wait
in a task of its own on every call, and it *returns normally* when the waiting task is
cancelled in the same loop iteration that sets the event, so the cancellation is lost and a
task its owner cancelled goes on running.  ``asyncio.timeout`` has neither problem; this is
the one place that spells the pattern out.
"""

from __future__ import annotations

import asyncio

__all__ = ["wait_until_set"]


async def wait_until_set(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; whether it is set.

    ``None`` waits without a limit.  A cancellation of the caller always propagates.
    """
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
