"""GracefulInterrupts: the first SIGINT/SIGTERM asks to stop, the second exits at once with 130."""

from __future__ import annotations

import asyncio
import os
import signal

from shardline.interrupts import INTERRUPTED, GracefulInterrupts


async def test_first_signal_stops_second_exits_now() -> None:
    stops: list[str] = []
    exits: list[int] = []
    with GracefulInterrupts(on_stop=lambda: stops.append("stop"), exit_now=exits.append) as interrupts:
        assert not interrupts.interrupted
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(interrupts.stopping.wait(), timeout=5)
        assert interrupts.received is signal.SIGTERM and stops == ["stop"] and exits == []
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):  # the handler runs on a later loop iteration
            if exits:
                break
            await asyncio.sleep(0)
        assert exits == [INTERRUPTED]
        assert stops == ["stop"]  # on_stop ran once


async def test_handlers_are_removed_on_exit() -> None:
    with GracefulInterrupts():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
