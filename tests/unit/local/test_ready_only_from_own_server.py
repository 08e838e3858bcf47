"""Readiness counts only an answer from the launched server, never from a process that holds its port."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from shardline.local import processes
from shardline.local.errors import ServerStartError
from shardline.local.processes import ServerHandle, free_port, launch, wait_ready

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")


def _connects(port: int) -> object:
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        return True


def test_an_answer_from_another_process_on_the_port_is_not_readiness(tmp_path: Path) -> None:
    with socket.socket() as squatter:  # e.g. another test session's emulator, on the port chosen for ours
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        log = tmp_path / "server.log"
        process = launch("late", [sys.executable, "-c", "import signal; signal.pause()"], log_path=log)
        handle = ServerHandle("late", f"http://127.0.0.1:{port}", process, log)
        try:
            with pytest.raises(ServerStartError, match="held by another process"):
                wait_ready(handle, lambda: _connects(port), timeout=0.5, interval=0.05)
        finally:
            handle.stop()


def test_the_launched_server_listening_itself_is_ready(tmp_path: Path) -> None:
    port = free_port()
    code = (
        "import signal, socket\n"
        f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()\n"
        "signal.pause()\n"
    )
    log = tmp_path / "server.log"
    process = launch("own", [sys.executable, "-c", code], log_path=log)
    handle = ServerHandle("own", f"127.0.0.1:{port}", process, log)  # a Kafka-style bootstrap
    try:
        wait_ready(handle, lambda: _connects(port), timeout=60, interval=0.05)
        assert processes.listens_on(process.pid, port) is True
    finally:
        handle.stop()
