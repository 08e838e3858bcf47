"""The run's watchdog: a test stuck past its own timeout ends the run instead of sticking it.

pytest-timeout raises inside a test that runs past its timeout, and the test is reported
failed.  It can still hang afterwards where nothing interrupts it again: an event loop's
teardown awaiting a producer that can never drain, a join in a worker thread.  The run is
then stuck, not failed, and says nothing about where.  So past a test's timeout plus a grace
(``SHARDLINE_TEST_HARD_STOP_GRACE_S``, 120 s), the watchdog prints every thread's stack to
the terminal, stops the local servers by their handles, and ends the run with status 3.

One daemon thread watches for the whole run, waking twice a second to compare the clock with
the armed deadline; arming and disarming only store a float and a string.  Nothing the
collector tracks is made or freed on its side, so it cannot disturb tests that count objects
(a timer thread per test did: the exiting thread freed its objects while the next test
counted frozen ones).
"""

from __future__ import annotations

import faulthandler
import math
import os
import sys
import threading
import time
from collections.abc import Generator

import pytest

from shardline.local.processes import ServerHandle

__all__ = ["STATUS", "pytest_configure", "pytest_runtest_protocol", "servers"]

STATUS = 3
"""The run's exit status when the watchdog ends it."""

_GRACE_S = float(os.environ.get("SHARDLINE_TEST_HARD_STOP_GRACE_S", "120"))

servers: list[ServerHandle] = []
"""The local servers running now (the session fixtures add and remove theirs)."""

_terminal_stderr: list[int] = []
_POLL_S = 0.5
# The running test's monotonic deadline (infinite between tests), id and seconds allowed.
_deadline = [math.inf]
_test = [""]
_allowed = [0.0]


def _timeout_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        value = marker.args[0] if marker.args else marker.kwargs.get("timeout")
        if value is not None:
            return float(value)
    configured = item.config.getini("timeout")
    return float(configured) if configured else 0.0


def _end_the_run(nodeid: str, limit: float) -> None:
    """Report, stop the servers, end the process: whatever fails on the way, the run ends
    (an exception here would only end this thread and leave the run hung)."""
    try:
        fd = os.dup(_terminal_stderr[0]) if _terminal_stderr else 2
        with os.fdopen(fd, "w") as stream:
            stream.write(f"\n*** {nodeid} still running {limit:.0f} s after it started: ending the run\n")
            stream.flush()
            faulthandler.dump_traceback(file=stream, all_threads=True)
            for handle in list(servers):
                try:
                    handle.stop(timeout=5.0)
                except Exception as exc:  # the next server is still stopped
                    stream.write(f"*** stopping {handle!r} failed: {type(exc).__name__}\n")
            stream.write("*** local servers stopped\n")
            stream.flush()
    finally:
        os._exit(STATUS)


def pytest_configure(config: pytest.Config) -> None:
    """Keep the terminal's stderr (output capture replaces descriptor 2 during each test) and
    start the watching thread."""
    del config
    stderr = sys.__stderr__
    _terminal_stderr.append(os.dup(stderr.fileno() if stderr is not None else 2))
    # started before any test, so its own start-up allocations overlap none
    threading.Thread(target=_watch, name="test-watchdog", daemon=True).start()


def _watch() -> None:
    while True:
        time.sleep(_POLL_S)
        if time.monotonic() >= _deadline[0]:
            _end_the_run(_test[0], _allowed[0])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    """Arm the watchdog for the test's setup, call and teardown; disarm it when they end."""
    timeout = _timeout_of(item)
    if timeout > 0:
        _test[0] = item.nodeid
        _allowed[0] = timeout + _GRACE_S
        _deadline[0] = time.monotonic() + _allowed[0]
    try:
        yield
    finally:
        _deadline[0] = math.inf
