"""A state file that cannot be written fails ``up`` with a typed error and leaves no server running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shardline.local import stack
from shardline.local.errors import LocalEmulatorError
from shardline.local.processes import ServerHandle, launch


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARDLINE_CACHE_DIR", str(tmp_path / "cache"))


def test_servers_are_stopped_when_the_state_cannot_be_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launched: list[subprocess.Popen[bytes]] = []

    def start_server(engine: str, run_dir: Path, **_: object) -> ServerHandle:
        log = tmp_path / f"{engine}.log"
        process = launch(
            engine, [sys.executable, "-c", "import signal; signal.pause()"], log_path=log, detached=True
        )
        launched.append(process)
        return ServerHandle(engine, "http://127.0.0.1:1", process, log)

    monkeypatch.setattr(stack, "start_server", start_server)
    state_path = tmp_path / "state.json"
    state_path.with_suffix(".tmp").mkdir()  # the temporary file's name is taken: writing fails
    try:
        with pytest.raises(LocalEmulatorError, match="cannot write the local stack state"):
            stack.up(("aws", "kafka"), state_path=state_path)
        assert len(launched) == 2
        assert [process.poll() is not None for process in launched] == [True, True]
        assert not state_path.exists()
    finally:
        for process in launched:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_a_state_path_that_is_a_directory_is_a_typed_error(tmp_path: Path) -> None:
    state_path = tmp_path / "state.json"
    state_path.mkdir()
    with pytest.raises(LocalEmulatorError, match="cannot read the local stack state"):
        stack.load_state(state_path)
    with pytest.raises(LocalEmulatorError, match="cannot read the local stack state"):
        stack.down(state_path=state_path)
