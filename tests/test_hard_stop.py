"""A test that hangs past its own timeout ends the run with its stacks instead of sticking it."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hard_stop import STATUS

_REPO = Path(__file__).resolve().parent.parent

_HANGING_TEST = """
import asyncio

import pytest


@pytest.mark.timeout(1)
@pytest.mark.asyncio
async def test_hangs_again_while_being_torn_down() -> None:
    try:
        await asyncio.Event().wait()
    finally:
        # as a producer's close does when it can never drain: wait again, with nothing to interrupt it
        await asyncio.Event().wait()
"""


_BROKEN_SERVER = """
from tests.hard_stop import servers


class RefusingToStop:
    def stop(self, timeout: float) -> None:
        raise RuntimeError("will not stop")


servers.append(RefusingToStop())
"""


@pytest.mark.parametrize("broken_server", [False, True], ids=["servers-stop", "a-server-fails-to-stop"])
def test_a_run_stuck_after_a_timeout_ends_with_the_stacks_and_a_failure(
    tmp_path: Path, broken_server: bool
) -> None:
    """Also when stopping a server fails: the run still ends (the watchdog's own failure
    would otherwise leave it hung)."""
    (tmp_path / "test_stuck.py").write_text((_BROKEN_SERVER if broken_server else "") + _HANGING_TEST)
    env = {**os.environ, "SHARDLINE_TEST_HARD_STOP_GRACE_S": "1"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            str(tmp_path / "test_stuck.py"),
        ],
        cwd=_REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == STATUS, (run.returncode, run.stdout[-2000:], run.stderr[-2000:])
    assert "test_hangs_again_while_being_torn_down still running 2 s after it started" in run.stderr
    assert "_cancel_all_tasks" in run.stderr  # the stuck thread's stack is printed
    assert "*** local servers stopped" in run.stderr
    assert ("failed: RuntimeError" in run.stderr) is broken_server


@pytest.mark.parametrize("repetition", range(300))
def test_the_watchdog_frees_nothing_while_a_test_counts_frozen_objects(repetition: int) -> None:
    """Arming and disarming between tests leaves nothing for another thread to free meanwhile
    (a timer thread per test freed its objects on exit: 3 of 300 of these failed)."""
    del repetition
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        time.sleep(0.001)  # the window in which an exiting thread would free what was frozen
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
