"""Helpers for tests that run ``shardline consume`` as a real process and read its file sink."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["sink_lines", "stop_process", "wait_until"]


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 150.0) -> None:
    """Poll an external process's output with a bounded deadline (it gives no signal)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def sink_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON-lines file sink's records so far (none before the file exists)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stop_process(
    process: subprocess.Popen[bytes], *, terminate: bool = True, timeout: float = 120.0
) -> tuple[int, str]:
    """SIGTERM (the graceful stop under test; ``terminate=False`` waits for the process to
    end by itself), then the exit status and the JSON logs."""
    if terminate and process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return process.returncode, stderr.decode(errors="replace")
