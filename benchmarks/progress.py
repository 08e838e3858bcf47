"""Live progress on stderr: a rich panel on a terminal, one plain line per second otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

__all__ = ["Progress"]


class Progress:
    """Shows the figures ``snapshot()`` returns; never payloads, only counts and latencies."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]], *, stream: Any = None) -> None:
        self._snapshot = snapshot
        self._stream = stream or sys.stderr
        self._console = Console(file=self._stream, stderr=stream is None)
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self._console.is_terminal:
            self._live = Live(self._render(), console=self._console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(None, None, None)

    def tick(self) -> None:
        if self._live is not None:
            self._live.update(self._render())
            return
        s = self._snapshot()
        print(
            f"[{s['elapsed']:5.1f}s] sent {s['sent']} acked {s['acked']} ({s['rate']:.0f} rec/s) "
            f"consumed {s['consumed']} throttles {s['throttles']} retries {s['retries']} "
            f"p99 ack {s['p99_ms']:.1f} ms iterator age {s['iterator_age_ms']} ms",
            file=self._stream,
            flush=True,
        )

    def _render(self) -> Table:
        s = self._snapshot()
        table = Table(title=f"stream-bench: {s['elapsed']:.1f}s of {s['duration']:.0f}s", show_header=False)
        for label, value in (
            ("records sent / acked", f"{s['sent']} / {s['acked']}"),
            ("producer rate (last second)", f"{s['rate']:.0f} rec/s"),
            ("consumed", str(s["consumed"])),
            ("throttles / retries", f"{s['throttles']} / {s['retries']}"),
            ("send-to-ack p50 / p99", f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} ms"),
            ("max iterator age", f"{s['iterator_age_ms']} ms"),
        ):
            table.add_row(label, value)
        return table
