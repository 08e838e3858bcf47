"""``down`` and ``status`` recognise a recorded server by pid, command line and start time.

Two kinesis-mock servers run the very same command line (their ports are in the
environment), so after a crashed stack's pid is reused by another one (a test session's,
say), the command line alone would name the wrong process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shardline.local import processes, stack

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARDLINE_CACHE_DIR", str(tmp_path / "cache"))


def _proc_start_time(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])


def _state_for(tmp_path: Path, child: subprocess.Popen[bytes], started: int) -> Path:
    argv = processes._proc_cmdline(child.pid)
    assert argv is not None
    server = {
        "name": "kinesis-mock",
        "services": ["kinesis"],
        "endpoint": "http://127.0.0.1:1",
        "pid": child.pid,
        "argv": argv,
        "log_path": str(tmp_path / "k.log"),
        "start_time": started,
    }
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"run_dir": str(tmp_path / "run"), "servers": [server], "environment": {}}))
    return path


@pytest.fixture
def other_server() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    yield child
    child.kill()
    child.wait()


def test_down_leaves_a_process_that_reused_the_pid_with_the_same_command(
    tmp_path: Path, other_server: subprocess.Popen[bytes]
) -> None:
    recorded_start = _proc_start_time(other_server.pid) - 1  # the recorded server started earlier
    path = _state_for(tmp_path, other_server, recorded_start)

    state = stack.load_state(path)
    assert state is not None
    assert not state.servers[0].alive()
    assert stack.down(state_path=path, timeout=5) == []
    assert other_server.poll() is None


def test_down_stops_the_recorded_process(tmp_path: Path, other_server: subprocess.Popen[bytes]) -> None:
    path = _state_for(tmp_path, other_server, _proc_start_time(other_server.pid))

    state = stack.load_state(path)
    assert state is not None and state.servers[0].alive()
    assert [server.pid for server in stack.down(state_path=path, timeout=30)] == [other_server.pid]
    assert other_server.wait(timeout=30) is not None


def test_up_records_the_start_time(tmp_path: Path, other_server: subprocess.Popen[bytes]) -> None:
    handle = processes.ServerHandle("moto", "http://127.0.0.1:1", other_server, tmp_path / "m.log")
    recorded = stack.RecordedServer.from_handle(handle, ["aws"])
    assert recorded.start_time == _proc_start_time(other_server.pid)
    assert stack.StackState.from_json(stack.StackState("/r", (recorded,)).to_json()).servers == (recorded,)
