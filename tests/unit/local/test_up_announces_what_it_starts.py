"""``shardline local up`` says "starting ..." only for what it will start.

With a stack already running it printed "starting kafka (kinesis engine: kinesis-mock)..." and
then refused: it started nothing, and no Kinesis emulator was asked for.  The line now comes
once the running-stack check has passed, and names the Kinesis engine only when Kinesis is
among the services.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from shardline.cli import main
from shardline.local import stack
from shardline.local.processes import ServerHandle, launch


@pytest.fixture(autouse=True)
def isolated_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHARDLINE_CACHE_DIR", str(tmp_path / "cache"))
    state_path = tmp_path / "state.json"
    monkeypatch.setenv("SHARDLINE_LOCAL_STATE", str(state_path))
    return state_path


def test_up_over_a_running_stack_refuses_without_saying_it_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    running = SimpleNamespace(servers=[SimpleNamespace(alive=lambda: True)])
    monkeypatch.setattr(stack, "load_state", lambda path=None: running)

    def never(*_: object, **__: object) -> ServerHandle:
        raise AssertionError("a server was started over a running stack")

    monkeypatch.setattr(stack, "start_server", never)
    assert main(["local", "up", "--services", "kafka"]) == 2
    err = capsys.readouterr().err
    assert "a local stack is already running" in err
    assert "starting" not in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("services", "line"),
    [
        ("kafka", "starting kafka..."),
        ("kinesis,kafka", "starting kinesis, kafka (kinesis engine: kinesalite)..."),
    ],
)
def test_up_names_the_kinesis_engine_only_when_it_starts_kinesis(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    isolated_stack: Path,
    services: str,
    line: str,
) -> None:
    launched: list[subprocess.Popen[bytes]] = []

    def start_server(engine: str, run_dir: Path, **_: object) -> ServerHandle:
        argv = [sys.executable, "-c", "import signal; signal.pause()"]
        process = launch(engine, argv, log_path=tmp_path / f"{engine}.log", detached=True)
        launched.append(process)
        return ServerHandle(engine, "http://127.0.0.1:1", process, tmp_path / f"{engine}.log")

    monkeypatch.setattr(stack, "start_server", start_server)
    try:
        assert main(["local", "up", "--services", services, "--kinesis-engine", "kinesalite"]) == 0
        assert capsys.readouterr().err.splitlines()[0] == line
    finally:
        stack.down(state_path=isolated_stack, timeout=5.0)
        for process in launched:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=5)
