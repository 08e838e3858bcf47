"""Ctrl-C and SIGTERM for the command-line tools: the first stops gracefully, the second at once.

A person who presses Ctrl-C expects the tool to stop soon and to keep what it did; one who
presses it again expects it to stop now.  :class:`GracefulInterrupts` installs handlers for
SIGINT and SIGTERM on the running event loop: the first signal sets :attr:`stopping` and
calls ``on_stop`` (so the command drains, writes its summary and returns); the second ends the
process immediately with status 130, without a traceback.  SIGTERM works even where SIGINT
is ignored (background jobs of some non-interactive shells).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import TracebackType

__all__ = ["INTERRUPTED", "GracefulInterrupts"]

INTERRUPTED = 130
"""The exit status of a command stopped by Ctrl-C or SIGTERM (128 + SIGINT), as shells use."""


class GracefulInterrupts:
    """``with GracefulInterrupts(on_stop=...) as interrupts:`` inside a running event loop.

    ``interrupts.stopping`` is an :class:`asyncio.Event` set by the first signal;
    ``interrupts.received`` names it (``None`` when no signal came).  ``exit_now`` (a test seam)
    is what the second signal calls.
    """

    def __init__(
        self,
        on_stop: Callable[[], object] | None = None,
        *,
        signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
        message: str | None = None,
        exit_now: Callable[[int], object] = os._exit,
    ) -> None:
        self._on_stop = on_stop
        self._signals = tuple(signals)
        self._message = message
        self._exit_now = exit_now
        self._installed: list[signal.Signals] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stopping = asyncio.Event()
        self.received: signal.Signals | None = None

    @property
    def interrupted(self) -> bool:
        """Whether a signal asked the command to stop."""
        return self.received is not None

    def __enter__(self) -> GracefulInterrupts:
        self._loop = asyncio.get_running_loop()
        for sig in self._signals:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.add_signal_handler(sig, self._handle, sig)
                self._installed.append(sig)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._loop is not None
        for sig in self._installed:
            with contextlib.suppress(Exception):
                self._loop.remove_signal_handler(sig)
        self._installed.clear()

    def _handle(self, received: signal.Signals) -> None:
        if self.received is not None:
            sys.stderr.flush()
            self._exit_now(INTERRUPTED)
            return
        self.received = received
        if self._message:
            print(self._message, file=sys.stderr, flush=True)
        self.stopping.set()
        if self._on_stop is not None:
            self._on_stop()
