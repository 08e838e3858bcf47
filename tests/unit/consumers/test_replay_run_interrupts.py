"""`shardline replay run` stopped by SIGTERM (AWS Batch stopping a child, `kill`) as by Ctrl-C.

Without handling, SIGTERM ended the process on the spot: a slice runner left its claim to
expire instead of recording that it stopped, and a `--workers` supervisor died leaving its
workers running on, unsupervised.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from consumers.replay import jobs_cli, manifest, slices, workers
from shardline import parentwatch
from shardline.interrupts import INTERRUPTED


class _Unhandled(Exception):
    """SIGTERM reached the process without the command handling it."""


@pytest.fixture
def sigterm_guard() -> Iterator[None]:
    """Without the command's handler, SIGTERM would end the test run: raise in the test instead."""

    def unhandled(signum: int, frame: FrameType | None) -> None:
        raise _Unhandled("SIGTERM was not handled by the command")

    saved = signal.signal(signal.SIGTERM, unhandled)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, saved)


class _Manifest:
    name = "backfill"
    hash = "0" * 64
    slices = (object(), object())

    def slice(self, index: int) -> object:
        return self.slices[index]


async def _load(location: str) -> Any:
    return _Manifest()


def _args(*argv: str) -> Any:
    return jobs_cli.build_parser("shardline replay", "run").parse_args(["--manifest", "m.json", *argv])


@pytest.mark.usefixtures("sigterm_guard")
def test_sigterm_stops_a_slice_runner_which_records_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stopped: list[str] = []

    async def run_slice(*args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:  # run_slice records the slice as stopped here
            stopped.append("cancelled")
            raise

    monkeypatch.setattr(manifest, "load_manifest", _load)
    monkeypatch.setattr(slices, "run_slice", run_slice)
    assert jobs_cli.main("run", _args("--slice", "0")) == INTERRUPTED
    assert stopped == ["cancelled"]
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.usefixtures("sigterm_guard")
def test_sigterm_stops_the_supervisor_and_its_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # slice 0's worker sends the supervisor SIGTERM once both are up; both workers then wait
    child = (
        "import os, pathlib, signal, sys, time\n"
        "d = pathlib.Path(sys.argv[1]); i = sys.argv[2]\n"
        "(d / i).write_text(str(os.getpid()))\n"
        "if i == '0':\n"
        "    deadline = time.monotonic() + 20\n"
        "    while not (d / '1').exists() and time.monotonic() < deadline:\n"
        "        time.sleep(0.01)\n"
        "    os.kill(os.getppid(), signal.SIGTERM)\n"
        "time.sleep(30)\n"
    )

    def command(location: str, index: int, **_: Any) -> list[str]:
        return [sys.executable, "-c", child, str(tmp_path), str(index)]

    monkeypatch.setattr(manifest, "load_manifest", _load)
    monkeypatch.setattr(workers, "worker_command", command)
    assert jobs_cli.main("run", _args("--workers", "2")) == INTERRUPTED
    for index in ("0", "1"):
        pid = int((tmp_path / index).read_text())
        with pytest.raises(ProcessLookupError):  # stopped and reaped
            os.kill(pid, 0)
    err = capsys.readouterr().err
    assert "slice 0" in err and "stopped: killed by SIGTERM" in err


def test_a_stopped_slice_says_so_in_its_failure() -> None:
    assert slices._failure_reason(asyncio.CancelledError()).startswith("interrupted")
    assert slices._failure_reason(RuntimeError("payload bytes")) == "RuntimeError"


def test_slice_runners_are_told_who_supervises_them() -> None:
    command = workers.worker_command("m.json", 3)
    assert command[-2:] == ["--supervisor-pid", str(os.getpid())]
    assert _args("--slice", "3", "--supervisor-pid", "42").supervisor_pid == 42


@pytest.mark.usefixtures("sigterm_guard")
def test_a_slice_runner_whose_supervisor_is_gone_stops_and_records_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A supervisor killed with SIGKILL stops nobody: the runner's own watch must, as SIGTERM does."""
    stopped: list[str] = []
    watched: list[int] = []

    def watch(parent_pid: int, *, label: str) -> object:
        watched.append(parent_pid)

        def stop_once() -> None:  # the real watch sends a second SIGTERM later; not in a test run
            os.kill(os.getpid(), signal.SIGTERM)

        return parentwatch.stop_when_orphaned(parent_pid, label=label, poll_s=0.01, stop=stop_once)

    async def run_slice(*args: Any, **kwargs: Any) -> None:
        try:
            await asyncio.sleep(20)
        except asyncio.CancelledError:
            stopped.append("cancelled")
            raise
        raise AssertionError("the runner was not stopped when its supervisor went away")

    monkeypatch.setattr(manifest, "load_manifest", _load)
    monkeypatch.setattr(slices, "run_slice", run_slice)
    monkeypatch.setattr(jobs_cli, "stop_when_orphaned", watch)
    gone = os.getppid() + 1_000_000  # not this process's parent: the supervisor is gone
    assert jobs_cli.main("run", _args("--slice", "0", "--supervisor-pid", str(gone))) == INTERRUPTED
    assert watched == [gone]
    assert stopped == ["cancelled"]
    assert "interrupted" in capsys.readouterr().err
