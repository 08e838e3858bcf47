"""A server that exits during start-up is started again on new ports; one that never answers is not."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from shardline.local import services
from shardline.local.errors import ServerStartError


def _never_ready() -> object:
    raise ConnectionRefusedError("refused")


def _start(tmp_path: Path, code: str, timeout: float) -> tuple[int, ServerStartError]:
    """Start a fake server running ``code`` until it fails; how many launches, and the error."""
    launches: list[Path] = []

    def plan(server_dir: Path) -> services._LaunchPlan:
        launches.append(server_dir)
        return services._LaunchPlan([sys.executable, "-c", code], "http://127.0.0.1:1", _never_ready)

    with pytest.raises(ServerStartError) as raised:
        services._start("fake", plan, tmp_path, detached=False, ready_timeout=timeout)
    return len(launches), raised.value


def test_a_server_that_never_answers_is_given_up_after_one_timeout(tmp_path: Path) -> None:
    launches, error = _start(tmp_path, "import signal; signal.pause()", timeout=0.3)
    assert launches == 1
    assert "did not answer" in str(error)


def test_a_server_that_exits_during_start_up_is_started_again(tmp_path: Path) -> None:
    launches, error = _start(tmp_path, "raise SystemExit(1)", timeout=120)
    assert launches == services._START_ATTEMPTS
    assert "exited with code 1" in str(error)
