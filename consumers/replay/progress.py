"""Progress of a replay job on stderr: a live ``rich`` line on a terminal, plain lines otherwise.

Kept apart from the job so the job stays testable.  ``rich`` is optional (it comes with the
``bench`` extra): without it, or when stderr is not a terminal (cron, CI, a pipe, an AWS Batch
child's log), progress is written as plain lines, with the rate since the previous line:
every ``every`` records, at least every ``interval`` seconds while records come in, and, used
as an async context manager, a line every ``interval`` seconds while none do (a job waiting
for a window's end or reading an empty stretch of a stream says so instead of going quiet).
Payloads never appear; only counts and partition names.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from shardline.errors import ConfigurationError

__all__ = ["ProgressDisplay", "rich_available"]

_log = logging.getLogger(__name__)


def rich_available() -> bool:
    """Whether the optional ``rich`` package can be imported."""
    return importlib.util.find_spec("rich") is not None


class ProgressDisplay:
    """Counts records written by a job and reports them on ``stream`` (stderr by default)."""

    def __init__(
        self,
        name: str,
        *,
        stream: TextIO | None = None,
        every: int = 1000,
        interval: float = 30.0,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if every < 1:
            raise ConfigurationError("every must be at least 1")
        if not interval > 0:
            raise ConfigurationError("interval must be above 0 seconds")
        self.name = name
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.interval = interval
        self.total = 0
        self.partitions: set[str] = set()
        self._live = live
        self._clock = clock
        self._next_line = every
        self._line_at = clock()
        self._line_total = 0
        self._progress: Any | None = None
        self._task: Any | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"ProgressDisplay({self.name!r}, total={self.total})"

    @property
    def live(self) -> bool:
        """A live ``rich`` display: on a terminal, when rich is installed (unless forced)."""
        if self._live is not None:
            return self._live and rich_available()
        return self.stream.isatty() and rich_available()

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("{task.completed} records"),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
            )
            progress.start()
            self._task = progress.add_task(f"replay {self.name}", total=None)
            self._progress = progress
        else:
            self._line("started")
        return self

    def advance(self, partition: str, records: int) -> None:
        self.total += records
        self.partitions.add(partition)
        if self._progress is not None:
            self._progress.update(self._task, advance=records)
        elif self.total >= self._next_line or self._clock() - self._line_at >= self.interval:
            self._progress_line()

    def tick(self) -> None:
        """A line if none was written for ``interval`` seconds (the heartbeat's call)."""
        if self._progress is None and self._clock() - self._line_at >= self.interval:
            self._progress_line()

    def _progress_line(self) -> None:
        now = self._clock()
        elapsed = now - self._line_at
        new = self.total - self._line_total
        if new:
            rate = new / elapsed if elapsed > 0 else 0.0
            text = f"{self.total} records from {len(self.partitions)} partition(s), {rate:.0f} records/s"
        else:
            text = f"{self.total} records from {len(self.partitions)} partition(s), none in {elapsed:.0f} s"
        self._line(text)
        self._line_at, self._line_total = now, self.total
        self._next_line = (self.total // self.every + 1) * self.every

    def _line(self, text: str) -> None:
        print(f"replay {self.name}: {text}", file=self.stream, flush=True)

    async def __aenter__(self) -> ProgressDisplay:
        self.__enter__()
        if self._progress is None:
            self._heartbeat = asyncio.create_task(self._beat(), name=f"replay {self.name} progress")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        self.__exit__(kind, error, trace)

    async def _beat(self) -> None:
        """Owned by the ``async with`` block, which cancels it.  A line that cannot be written
        (stderr closed) ends the heartbeat with one log record; the job goes on."""
        try:
            while True:
                await asyncio.sleep(self.interval)
                self.tick()
        except Exception as exc:  # noqa: BLE001 - progress is reporting; it never stops the job
            _log.warning("replay progress lines stopped", extra={"error_type": type(exc).__name__})

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        else:
            state = "failed" if error is not None else "done"
            self._line(f"{state}, {self.total} records from {len(self.partitions)} partition(s)")
