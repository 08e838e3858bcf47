"""An ``up`` stopped halfway (Ctrl-C, SIGTERM, SIGHUP) stops the server it was starting.

Servers start detached, in sessions of their own, so nothing else stops them: one left
running by an interrupted ``up`` had no record for ``down`` to find.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from shardline.local import processes, services

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

# A fake server: writes its pid where its first argument says, then waits for a signal.
_FAKE_SERVER = "import os, signal, sys; open(sys.argv[1], 'w').write(str(os.getpid())); signal.pause()"
# The same, then opens and closes the FIFO its second argument names: a reader of the FIFO
# wakes up once the pid is written (and `up` is waiting for the server to answer).
_FAKE_SERVER_SIGNALLING = (
    "import os, signal, sys; open(sys.argv[1], 'w').write(str(os.getpid())); "
    "open(sys.argv[2], 'w').close(); signal.pause()"
)


def _gone(pid: int, timeout: float) -> bool:
    """Whether ``pid`` has exited (or is a zombie) within ``timeout`` seconds."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    return processes._is_zombie(pid)


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Pids of fake servers this test started; any still running at the end are killed."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not processes._is_zombie(pid):
            os.kill(pid, signal.SIGKILL)


def test_ctrl_c_while_waiting_for_a_detached_server_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leftovers: list[int]
) -> None:
    launched: list[subprocess.Popen[bytes]] = []
    real_launch = processes.launch

    def launch(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        process = real_launch(*args, **kwargs)  # type: ignore[arg-type]
        launched.append(process)
        leftovers.append(process.pid)
        return process

    def interrupted() -> object:
        raise KeyboardInterrupt

    def plan(server_dir: Path) -> services._LaunchPlan:
        argv = [sys.executable, "-c", _FAKE_SERVER, str(server_dir / "pid")]
        return services._LaunchPlan(argv, "http://127.0.0.1:1", interrupted)

    monkeypatch.setattr(services, "launch", launch)
    with pytest.raises(KeyboardInterrupt):
        services._start("fake", plan, tmp_path, detached=True, ready_timeout=60)
    assert len(launched) == 1
    assert launched[0].poll() is not None  # stopped (and reaped) before the interrupt went on


_UP_SCRIPT = textwrap.dedent(
    """
    import sys
    from shardline.cli import main
    from shardline.local import services

    def never_ready():
        raise ConnectionRefusedError("not yet")

    def fake_moto(run_dir, *, detached, ready_timeout, announce):
        def plan(server_dir):
            argv = [sys.executable, "-c", FAKE_SERVER, PID_FILE, STARTED_FIFO]
            return services._LaunchPlan(argv, "http://127.0.0.1:1", never_ready)

        return services._start("moto", plan, run_dir, detached=detached, ready_timeout=120)

    services.ENGINES["moto"] = fake_moto
    sys.exit(main(["local", "up", "--services", "aws"]))
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_terminated_up_stops_the_server_it_was_starting(
    tmp_path: Path, leftovers: list[int], signum: signal.Signals
) -> None:
    pid_file, started = tmp_path / "server.pid", tmp_path / "started"
    os.mkfifo(started)
    constants = f"FAKE_SERVER = {_FAKE_SERVER_SIGNALLING!r}\nPID_FILE = {str(pid_file)!r}\n"
    script = constants + f"STARTED_FIFO = {str(started)!r}\n" + _UP_SCRIPT
    env = {
        **os.environ,
        "SHARDLINE_CACHE_DIR": str(tmp_path / "cache"),
        "SHARDLINE_LOCAL_STATE": str(tmp_path / "state.json"),
    }
    up = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        # readable (hung up) once the fake server opened and closed it, after writing its pid
        fifo = os.open(started, os.O_RDONLY | os.O_NONBLOCK)
        try:
            readable, _, _ = select.select([fifo], [], [], 60)
        finally:
            os.close(fifo)
        assert readable, "the fake server never started"
        server_pid = int(pid_file.read_text())
        leftovers.append(server_pid)
        up.send_signal(signum)
        _, stderr = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert up.returncode == 130, stderr.decode(errors="replace")
    assert _gone(server_pid, timeout=30), "the interrupted up left its server running"
    assert not (tmp_path / "state.json").exists()
