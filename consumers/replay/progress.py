"""Progress of a replay job: a rich display on stderr when it is a terminal, else nothing.

Kept apart from the job so the job stays testable and a non-interactive run (cron, CI)
prints only its final summary.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

__all__ = ["ProgressDisplay"]


class ProgressDisplay:
    """Counts records written per job; shows a live line on a TTY (``rich``), silent otherwise."""

    def __init__(self, name: str, *, stream: TextIO | None = None) -> None:
        self.name = name
        self.stream = stream if stream is not None else sys.stderr
        self.total = 0
        self._progress: object | None = None
        self._task: object | None = None

    @property
    def enabled(self) -> bool:
        return self.stream.isatty()

    def __enter__(self) -> ProgressDisplay:
        if self.enabled:
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
        return self

    def advance(self, partition: str, records: int) -> None:
        self.total += records
        if self._progress is not None:
            from rich.progress import Progress, TaskID

            assert isinstance(self._progress, Progress)
            self._progress.update(TaskID(int(str(self._task))), advance=records)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._progress is not None:
            from rich.progress import Progress

            assert isinstance(self._progress, Progress)
            self._progress.stop()
