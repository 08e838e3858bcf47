"""Stop a run at once when the process serving its embedded target dies.

With ``--embedded-target-process`` the target (moto behind the gateway) is a child process.
Killed mid-run (the OOM killer, a stray ``kill``), it left the producer retrying connections
that were refused until the schedule and the drain ran out, then a failed counter request
ended the run as "TransientServiceError: BrokenPipeError (connection or timeout)": a minute
of a run measuring nothing, and an error that did not say the target was gone.  The child's
exit is watched here instead, and ends the run with an error that names it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from shardline.local.errors import LocalEmulatorError

__all__ = ["TARGET_DIED", "describe_exit", "unless_target_dies"]

T = TypeVar("T")

TARGET_DIED = "the embedded target process exited during the run"
_CANCEL_TIMEOUT_S = 15.0
"""How long the cancelled run may take to close its clients and readers before the error is
raised anyway (they talk to an endpoint that refuses connections at once)."""


def describe_exit(code: int | None) -> str:
    """``exit code 3`` or ``killed by SIGKILL`` for a process's exit code (negative: a signal)."""
    if code is None:
        return "exit code unknown"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


async def unless_target_dies(
    run: Awaitable[T], sentinel: int | None, exit_code: Callable[[], int | None]
) -> T:
    """Await ``run``; when ``sentinel`` (a process sentinel, readable once the process has
    exited) fires first, cancel ``run`` and raise :class:`LocalEmulatorError` naming the exit.

    ``sentinel`` ``None`` (the target runs in this process, or elsewhere): ``run`` alone.
    A run that ends while the target is dead fails too: what it measured after the target
    went away is connection errors, not the stream.
    """
    task = asyncio.ensure_future(run)
    if sentinel is None:
        return await task
    loop = asyncio.get_running_loop()
    died: asyncio.Future[None] = loop.create_future()

    def on_exit() -> None:
        if not died.done():
            died.set_result(None)

    try:
        loop.add_reader(sentinel, on_exit)
    except (NotImplementedError, OSError, ValueError):  # no selector for it: nothing to watch
        return await task
    try:
        pending: set[asyncio.Future[Any]] = {task, died}
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if not died.done():
            return task.result()
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=_CANCEL_TIMEOUT_S)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the target's exit is the cause to report
        raise LocalEmulatorError(f"{TARGET_DIED} ({describe_exit(exit_code())}); no result was written")
    finally:
        loop.remove_reader(sentinel)
        if not task.done():
            task.cancel()
