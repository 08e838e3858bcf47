"""An ``--env-file`` that cannot be written is one line on stderr, after the exports on stdout.

It ended ``up`` with a traceback once the servers were running, and printed no export lines,
so ``eval "$(shardline local up --env-file ...)"`` pointed the shell at nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shardline.cli import main
from shardline.local import stack
from shardline.local.processes import ServerHandle, launch


def test_an_unwritable_env_file_still_prints_the_exports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHARDLINE_CACHE_DIR", str(tmp_path / "cache"))
    state_path = tmp_path / "state.json"
    monkeypatch.setenv("SHARDLINE_LOCAL_STATE", str(state_path))
    launched: list[subprocess.Popen[bytes]] = []

    def start_server(engine: str, run_dir: Path, **_: object) -> ServerHandle:
        argv = [sys.executable, "-c", "import signal; signal.pause()"]
        process = launch(engine, argv, log_path=tmp_path / f"{engine}.log", detached=True)
        launched.append(process)
        return ServerHandle(engine, "http://127.0.0.1:1", process, tmp_path / f"{engine}.log")

    monkeypatch.setattr(stack, "start_server", start_server)
    env_file = tmp_path / "missing-dir" / "stack.env"
    try:
        assert main(["local", "up", "--services", "aws", "--env-file", str(env_file)]) == 1
        out, err = capsys.readouterr()
        assert "export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:1" in out.splitlines()
        last = err.splitlines()[-1]
        assert last.startswith(f"shardline local up: cannot write the environment to {env_file}")
        assert "the stack is running" in last and "Traceback" not in err
        state = stack.load_state(state_path)
        assert state is not None and [server.alive() for server in state.servers] == [True]
    finally:
        stack.down(state_path=state_path, timeout=5.0)
        for process in launched:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=5)
