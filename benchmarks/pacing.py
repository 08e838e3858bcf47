"""The open-loop send schedule shared by every target: record *i* is due at ``start + i / rate``.

Sending is paced by the schedule, not by acknowledgements, so a slow target shows up as
latency (measured from each record's intended time) instead of quietly lowering the offered
load.  With ``rate=None`` the loop sends as fast as the client goes, yielding to the event
loop every ``burst`` records so acknowledgements and consumers keep running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from benchmarks.recorder import Recorder
from shardline.events_wait import wait_until_set

__all__ = ["Clock", "drive_schedule", "produce_then_drain", "wait_for_consumers"]

Clock = Callable[[], float]
SendOne = Callable[[int, float], Awaitable[None]]
"""``send_one(record_index, intended_monotonic_time)``: build and hand one record to the producer."""


async def drive_schedule(
    *,
    rate: float | None,
    duration: float,
    start: float,
    send_one: SendOne,
    tick: Callable[[], None],
    on_now: Callable[[float], None] | None = None,
    burst: int = 100,
    clock: Clock = time.monotonic,
    stop: asyncio.Event | None = None,
) -> int:
    """Send on schedule until ``duration`` seconds after ``start`` (or ``stop`` is set);
    ``tick()`` once a second.

    Returns how many records were handed to ``send_one``.
    """
    sent = 0
    next_tick = start + 1.0
    while True:
        now = clock()
        if on_now is not None:
            on_now(now)
        elapsed = now - start
        if stop is not None and stop.is_set():
            return sent
        if elapsed >= duration:
            # the plan is rate x duration records: send the ones due in the last slice too
            planned = int(duration * rate) if rate else sent
            while sent < planned:
                await send_one(sent, start + sent / rate if rate else clock())
                sent += 1
            return sent
        due = int(elapsed * rate) + 1 if rate else sent + burst
        while sent < due:
            intended = start + sent / rate if rate else clock()
            await send_one(sent, intended)
            sent += 1
        if clock() >= next_tick:
            tick()
            next_tick += 1.0
        delay = max(0.0, start + sent / rate - clock()) if rate else 0.0
        if stop is not None and delay > 0:
            await wait_until_set(stop, delay)
        else:
            await asyncio.sleep(delay)


async def wait_for_consumers(
    consumed: Callable[[], int],
    expected: Callable[[], int],
    *,
    timeout: float,
    tick: Callable[[], None],
    interval: float = 0.25,
    clock: Clock = time.monotonic,
    reading: Callable[[], bool] | None = None,
) -> bool:
    """Let the consumers catch up with what was acknowledged, for at most ``timeout`` seconds.

    The target gives no completion signal (a stream has no end), so this polls the
    consumers' count against a bounded deadline, and gives up early once ``reading`` says
    no reader is left (they all died: nothing more will be read).  True when they caught up.
    """
    deadline = clock() + timeout
    while consumed() < expected():
        if clock() >= deadline or (reading is not None and not reading()):
            return False
        tick()
        await asyncio.sleep(interval)
    return True


async def produce_then_drain(
    producer: AbstractAsyncContextManager[Any],
    flush: Callable[[], Awaitable[None]],
    *,
    recorder: Recorder,
    rate: float | None,
    duration: float,
    start: float,
    send_one: SendOne | None,
    tick: Callable[[], None],
    consumers_running: Callable[[], bool] | None,
    drain_seconds: float,
    stop: asyncio.Event | None = None,
    interrupt_grace: float = 1.0,
    send_batch: Callable[[int, int], Awaitable[None]] | None = None,
) -> bool:
    """The producing phase every target shares: send on schedule, flush, close the producer,
    then give the consumers up to ``drain_seconds`` to read what was acknowledged.
    ``consumers_running`` says whether any reader is still reading (None: the run has none).

    When ``stop`` is set (Ctrl-C), sending ends at once and the producer gets
    ``interrupt_grace`` seconds to deliver what it holds (the rest fails and is counted as
    failed); consumers are not waited for.  ``send_batch`` (the batch generator's) replaces
    ``send_one`` when given.  Returns whether the consumers caught up (True when there are
    none; False when interrupted).
    """
    async with producer:
        if send_batch is not None:
            from benchmarks.generator import drive_ticks

            await drive_ticks(
                rate=rate,
                duration=duration,
                start=start,
                send_batch=send_batch,
                tick=tick,
                on_now=recorder.set_now,
                stop=stop,
            )
        else:
            assert send_one is not None
            await drive_schedule(
                rate=rate,
                duration=duration,
                start=start,
                send_one=send_one,
                tick=tick,
                on_now=recorder.set_now,
                stop=stop,
            )
        if stop is not None and stop.is_set():
            await producer.close(timeout=interrupt_grace)  # type: ignore[attr-defined]
            recorder.now = time.monotonic()
            return False
        await flush()
    recorder.now = time.monotonic()
    if consumers_running is None:
        return True
    return await wait_for_consumers(
        lambda: recorder.read_by_slowest,
        lambda: recorder.total_acked,
        timeout=drain_seconds,
        tick=tick,
        reading=consumers_running,
    )
