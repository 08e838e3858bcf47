"""A watchdog for property tests that run a generated program as a task: a hang fails the
example (with where it stuck) instead of stalling the run, and shrinking it stays affordable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["watch"]


async def watch(
    task: asyncio.Task[None],
    progress: Callable[[], object],
    where: Callable[[], str],
    *,
    tick: float,
    quiet_ticks: int,
    bound: float,
    cancel_rounds: int = 10,
) -> None:
    """Wait for ``task``; fail when ``progress()`` has not changed for ``quiet_ticks`` ticks of
    ``tick`` seconds, or past ``bound`` seconds in all.

    Ticks are counted by the event loop, so a machine that stalls the whole process delays
    the watchdog as much as the program.  A hung task is cancelled (up to ``cancel_rounds``
    times: a ``close()`` may absorb one cancellation and wait again) before the failure is
    raised; a task that ended on its own has its result or error passed on as it is.
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + bound
    last, quiet = progress(), 0
    while not task.done():
        await asyncio.wait({task}, timeout=tick)
        now = progress()
        quiet = quiet + 1 if now == last else 0
        last = now
        if quiet >= quiet_ticks or loop.time() >= give_up:
            stuck = where()
            for _ in range(cancel_rounds):
                if task.done():
                    break
                task.cancel()
                await asyncio.wait({task}, timeout=tick)
            raise AssertionError(f"the program hung {stuck}")
    task.result()
