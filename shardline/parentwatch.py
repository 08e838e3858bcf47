"""A worker process that stops itself once the process that supervises it is gone.

stream-bench's workers and ``shardline replay run --workers N``'s slice runners leave the
terminal's process group (or session), so that a terminal's Ctrl-C reaches the supervisor
alone and each worker is stopped exactly once, by the supervisor.  The price: when the
supervisor dies without stopping them (SIGKILL, the OOM killer, a hang-up it did not get to
forward), nothing reaches them, and they ran on with nobody collecting their result (a bench
worker producing into the stream for the rest of the run; a slice runner holding its claim,
so a rerun found the slice held).  :func:`stop_when_orphaned` watches for that.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["PARENT_POLL_S", "STOP_TIMEOUT_S", "stop_when_orphaned"]

PARENT_POLL_S = 1.0
"""How often a worker checks that its supervisor still runs."""
STOP_TIMEOUT_S = 10.0
"""How long a worker stopped by its watch has to stop before a second SIGTERM."""


def stop_when_orphaned(
    parent_pid: int,
    *,
    label: str,
    poll_s: float = PARENT_POLL_S,
    stop: Callable[[], None] | None = None,
) -> threading.Thread:
    """Stop this process as on an interrupt once ``parent_pid`` is no longer its parent.

    ``parent_pid`` is the supervisor's pid as the supervisor passed it (read here at start, it
    could already be the reaper's if the supervisor died while this process started).  A
    daemon thread checks every ``poll_s`` whether this process was handed to another parent;
    then it calls ``stop`` (by default SIGTERM to this process, which the worker handles as
    Ctrl-C; a second one if it still runs after :data:`STOP_TIMEOUT_S`).  A watch that fails
    stops the worker too, saying why on stderr after ``label``: a worker that can no longer
    tell whether anyone collects its result must not run on unwatched.
    """
    stop_worker = stop if stop is not None else _terminate_self

    def watch() -> None:
        try:
            while os.getppid() == parent_pid:
                time.sleep(poll_s)
        except BaseException as exc:  # noqa: BLE001 - the worker is stopped; the cause is printed
            print(
                f"{label}: watching the parent process failed ({type(exc).__name__}); stopping",
                file=sys.stderr,
            )
        stop_worker()

    watcher = threading.Thread(target=watch, name=f"{label} parent watch", daemon=True)
    watcher.start()
    return watcher


def _terminate_self() -> None:
    for _ in range(2):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(STOP_TIMEOUT_S)
