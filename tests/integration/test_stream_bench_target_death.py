"""``stream-bench run --embedded-target-process`` when the target's process dies mid-run.

The run must stop soon after, with a one-line error naming the target's exit, and write no
result: a minute of refused connections followed by "BrokenPipeError (connection or
timeout)" told the operator neither what happened nor why the run took so long.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the target through /proc"),
]

_PLANNED_SECONDS = 120
"""The run's planned duration: far beyond the bound the test waits for it to end."""
_EXIT_BOUND_S = 45


def _target_process(pid: int) -> int:
    """The embedded target's process, by /proc: the child ``pid`` spawned that stays in its
    process group (each --workers worker moves to a group of its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent, group = (int(field) for field in stat.rsplit(")", 1)[1].split()[1:3])
        if parent == pid and group == pid and b"spawn_main" in command:
            found.append(int(entry.name))
    assert len(found) == 1, f"expected one target process, found {found}"
    return found[0]


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    """A long run on the embedded target in a child process, returned once records flow."""
    run = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.cli", "run", "--embedded-target-process",
         "--duration", str(_PLANNED_SECONDS), "--rate", "100", "--keys", "50", "--shards", "2",
         "--out", str(tmp_path / "out"), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    assert run.stderr is not None
    for line in run.stderr:  # bounded: the run itself ends after its planned duration
        if "sent" in line and "acked" in line:
            return run
    run.kill()
    raise AssertionError("the run ended before it made progress")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_killed_target_process_ends_the_run_at_once_with_an_error_naming_it(
    tmp_path: Path, workers: str
) -> None:
    run = _start(tmp_path, "--workers", workers)
    try:
        os.kill(_target_process(run.pid), signal.SIGKILL)
        out, err = run.communicate(timeout=_EXIT_BOUND_S)
    finally:
        if run.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=10)
    assert run.returncode == 1
    assert "the embedded target process exited during the run (killed by SIGKILL)" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "result.json").exists()
    assert "result JSON" not in out
