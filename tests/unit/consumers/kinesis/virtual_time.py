"""Virtual time for programs of several workers in one event loop: nothing waits in real time.

Every sleep of the code under test registers a timer; :meth:`VirtualTime.advance` fires the
timers in deadline order, letting the loop settle after each, so a program says "three
seconds pass" and every renewal, listing and back-off due in them happens, in order, in
milliseconds.  The loop counts as settled when no double was called and no timer registered
for a number of consecutive turns; a loop that keeps busy at one instant for too long is a
livelock, and fails the example.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable

__all__ = ["SteppingTime", "VirtualTime"]

QUIET_TURNS = 12
"""Loop turns without activity after which the loop counts as settled."""
BUSY_TURNS = 20_000
"""Loop turns at one instant after which the code under test counts as spinning."""


class VirtualTime:
    """A clock that moves only when told to, and the sleep that goes with it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.activity = 0
        """Bumped by every timer and every call into a double: the loop is busy while it moves."""
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = 0

    def clock(self) -> float:
        return self.now

    def touch(self) -> None:
        """Something happened (a double was called): the loop is not settled yet."""
        self.activity += 1

    async def sleep(self, seconds: float) -> None:
        """Wake once :meth:`advance` passed ``seconds`` from now (at once for none)."""
        self.touch()
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        timer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._order += 1
        heapq.heappush(self._timers, (self.now + seconds, self._order, timer))
        await timer  # a cancelled sleeper cancels its timer, which advance() skips

    async def settle(self) -> None:
        """Let every task run until the loop is quiet at this instant."""
        quiet, turns, last = 0, 0, self.activity
        while quiet < QUIET_TURNS:
            await asyncio.sleep(0)
            turns += 1
            if turns > BUSY_TURNS:
                raise AssertionError(f"the workers keep busy at t={self.now:.2f} without time passing")
            if self.activity == last:
                quiet += 1
            else:
                quiet, last = 0, self.activity

    async def advance(self, seconds: float, observe: Callable[[], None]) -> None:
        """Let ``seconds`` pass, firing due timers in order; ``observe`` runs at every instant
        the loop settled (the program's invariants are checked there)."""
        target = self.now + seconds
        await self.settle()
        observe()
        while self._timers and self._timers[0][0] <= target:
            deadline = self._timers[0][0]
            self.now = max(self.now, deadline)
            while self._timers and self._timers[0][0] <= deadline:
                _, _, timer = heapq.heappop(self._timers)
                if not timer.done():
                    timer.set_result(None)
            await self.settle()
            observe()
        self.now = target
        await self.settle()
        observe()


class SteppingTime:
    """A clock that moves by exactly what one caller sleeps: for code under test that waits
    on its own (a back-off, a budget), with no other task to run meanwhile."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
