"""Ctrl-C / SIGTERM on ``stream-bench run`` keeps what was measured: a partial result and report
marked "interrupted", exit status 130, no traceback; SIGTERM works even where SIGINT is ignored.
A terminal's Ctrl-C goes to the whole process group: with ``--embedded-target-process`` the
target's child process receives it too and must keep serving until the parent stops it.

How long the stop takes is printed, not asserted (a shared machine makes wall-clock figures
noisy); the wait for the process is bounded, so a run that does not stop fails.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from benchmarks.result import validate_result

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _start(out: Path, *, ignore_sigint: bool, target_process: bool) -> subprocess.Popen[str]:
    """The run in a session of its own, so the whole group can be signalled as a terminal does."""

    def ignore() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.entry", "run", "--duration", "120", "--rate", "200",
         "--shards", "1", "--consumer", "none", "--out", str(out),
         *(["--embedded-target-process"] if target_process else [])],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ignore if ignore_sigint else None,
        start_new_session=True,
    )  # fmt: skip


def _lines(stream: IO[str], into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


@pytest.mark.parametrize(
    ("sig", "to_group"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["sigint", "sigterm-with-sigint-ignored", "ctrl-c-to-the-group-with-the-target-process"],
)
def test_an_interrupted_run_writes_its_partial_result(
    sig: signal.Signals, to_group: bool, tmp_path: Path
) -> None:
    process = _start(tmp_path, ignore_sigint=sig is signal.SIGTERM, target_process=to_group)
    assert process.stdout is not None and process.stderr is not None
    stderr: queue.Queue[str | None] = queue.Queue()
    stdout: queue.Queue[str | None] = queue.Queue()
    readers = [
        threading.Thread(target=_lines, args=(process.stderr, stderr), daemon=True),
        threading.Thread(target=_lines, args=(process.stdout, stdout), daemon=True),
    ]
    for reader in readers:
        reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 90  # the embedded target's start, on a busy machine
        while True:  # progress lines: one a second once records flow
            line = stderr.get(timeout=max(deadline - time.monotonic(), 0.01))
            assert line is not None, "stream-bench ended before it made progress:\n" + "".join(seen)
            seen.append(line)
            if line.startswith("[") and " sent " in line and "sent 0 " not in line:
                break
        signalled = time.monotonic()
        if to_group:  # what a terminal's Ctrl-C does: every process of the group gets it
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
        process.wait(timeout=30)  # bounded: a run that does not stop fails here
        stopped_in = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    for reader in readers:
        reader.join(timeout=10)
    err = "".join(seen) + "".join(line for line in _drain(stderr))
    out = "".join(_drain(stdout))
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err + out
    assert "interrupted" in err
    result = json.loads((tmp_path / "result.json").read_text())
    validate_result(result)
    assert result["interrupted"] is True
    assert 0 < result["summary"]["records_sent"] < 120 * 200
    assert any("interrupted after" in note for note in result["notes"])
    assert "(interrupted)" in (tmp_path / "report.html").read_text()
    print(f"stopped {stopped_in:.2f} s after {sig.name}")  # not asserted: the machine may be busy


def _drain(lines: queue.Queue[str | None]) -> list[str]:
    drained: list[str] = []
    while True:
        try:
            line = lines.get_nowait()
        except queue.Empty:
            return drained
        if line is not None:
            drained.append(line)
