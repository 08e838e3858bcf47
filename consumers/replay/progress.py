"""Progress of a replay job on stderr: a live ``rich`` line on a terminal, plain lines otherwise.

Kept apart from the job so the job stays testable.  ``rich`` is optional (it comes with the
``bench`` extra): without it, or when stderr is not a terminal (cron, CI, a pipe), progress
is written as plain lines every ``every`` records and once at the end, so a log still shows
that the job is moving.  Payloads never appear; only counts and partition names.
"""

from __future__ import annotations

import importlib.util
import sys
from types import TracebackType
from typing import Any, TextIO

from shardline.errors import ConfigurationError

__all__ = ["ProgressDisplay", "rich_available"]


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
        live: bool | None = None,
    ) -> None:
        if every < 1:
            raise ConfigurationError("every must be at least 1")
        self.name = name
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.total = 0
        self.partitions: set[str] = set()
        self._live = live
        self._next_line = every
        self._progress: Any | None = None
        self._task: Any | None = None

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
        elif self.total >= self._next_line:
            self._line(f"{self.total} records from {len(self.partitions)} partition(s)")
            self._next_line = (self.total // self.every + 1) * self.every

    def _line(self, text: str) -> None:
        print(f"replay {self.name}: {text}", file=self.stream, flush=True)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        else:
            state = "failed" if error is not None else "done"
            self._line(f"{state}, {self.total} records from {len(self.partitions)} partition(s)")
