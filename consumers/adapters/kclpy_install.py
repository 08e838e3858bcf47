"""Install amazon-kclpy's Python half without the KCL jars.

``pip install amazon-kclpy`` runs a setup.py that downloads the Kinesis Client Library jars
(the Java MultiLangDaemon) from Maven Central; where only the package registries are
reachable that build fails.  The record-processor side (``amazon_kclpy.kcl``,
``amazon_kclpy.v3.processor``) is pure Python and needs no jar.  setup.py reads the jar list
from the sdist's pom.xml, so this script downloads the sdist, empties the dependency list of
that pom (keeping its ``properties`` section, which setup.py also reads) and installs the result
with the same interpreter.  Deployments that run the daemon install the jars separately
(``python setup.py download_jars`` in the sdist, or the KCL's Maven artefacts).

This is what the ``kcl`` extra means: ``pip install 'shardline[kcl]' && shardline-install-kclpy``
(the extra brings the build tools; the script installs amazon-kclpy into the same environment).

Usage: shardline-install-kclpy [--version 3.2.0] [--if-missing]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET  # nosec B405
from pathlib import Path

from shardline.errors import ShardlineError

DEFAULT_VERSION = "3.2.0"
# sha256 of the amazon-kclpy sdist on PyPI, per version this installer has been checked with.
SDIST_SHA256 = {
    "3.2.0": "62e81cc84714c920fe6aa5d61837b298fe7e01f6326dcb564b12ab8e6c4aca4e",
}
_MAVEN = "{http://maven.apache.org/POM/4.0.0}"


def _neutralise_jar_downloads(pom: Path) -> int:
    """Remove every <dependency> from the pom; return how many were removed.

    ElementTree (not defusedxml) is enough: the only XML parsed is the pom.xml of the sdist whose
    sha256 was just checked against the pin, not user input.
    """
    ET.register_namespace("", _MAVEN.strip("{}"))
    tree = ET.parse(pom)  # noqa: S314  # nosec B314
    root = tree.getroot()
    removed = 0
    for dependencies in root.iter(f"{_MAVEN}dependencies"):
        for dependency in list(dependencies):
            dependencies.remove(dependency)
            removed += 1
    tree.write(pom, encoding="utf-8", xml_declaration=True)
    return removed


_SETUP_REQUIRES = 'setup_requires=["pytest-runner"],'


def _drop_setup_requires(setup_py: Path) -> None:
    """Remove setup.py's ``setup_requires`` (pytest-runner, for its tests), which setuptools would
    fetch from the index outside pip's hash checking; the build needs nothing but setuptools."""
    text = setup_py.read_text()
    if _SETUP_REQUIRES in text:
        setup_py.write_text(text.replace(_SETUP_REQUIRES, ""))


class KclpyInstallError(ShardlineError):
    """The sdist could not be fetched, or it is not the one whose hash is pinned (in the one
    error tree, as every error Shardline raises)."""


def _verify(archive: Path, expected: str) -> None:
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != expected:
        raise KclpyInstallError(f"{archive.name}: sha256 {digest} does not match the pinned {expected}")


def _extract(sdist: tarfile.TarFile, destination: Path) -> None:
    """Unpack regular files and directories under ``destination`` only.

    Python releases without tarfile's extraction filters (3.11 before 3.11.4, Debian 12's 3.11.2)
    get the same refusal of absolute paths, ``..``, links and device files by hand.
    """
    if hasattr(tarfile, "data_filter"):
        sdist.extractall(destination, filter="data")
        return
    root = destination.resolve()
    for member in sdist.getmembers():
        if not (member.isfile() or member.isdir()) or not (root / member.name).resolve().is_relative_to(root):
            raise KclpyInstallError(f"refusing to unpack {member.name!r} from the sdist")
    sdist.extractall(destination)  # noqa: S202  # nosec B202


def install(version: str, sha256: str | None = None) -> None:
    """Download, verify, de-jar and install amazon-kclpy ``version`` into this interpreter."""
    expected = sha256 or SDIST_SHA256.get(version)
    if expected is None:
        raise KclpyInstallError(
            f"no pinned sha256 for amazon-kclpy {version}: pass --sha256 (known: {', '.join(SDIST_SHA256)})"
        )
    with tempfile.TemporaryDirectory(prefix="kclpy-") as scratch:
        workdir = Path(scratch)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                str(workdir),
                f"amazon-kclpy=={version}",
            ],
            check=True,
        )
        archive = next(workdir.glob("amazon*kclpy-*.tar.gz"))
        _verify(archive, expected)
        with tarfile.open(archive) as sdist:
            _extract(sdist, workdir)
        source = next(path for path in workdir.iterdir() if path.is_dir())
        removed = _neutralise_jar_downloads(source / "pom.xml")
        _drop_setup_requires(source / "setup.py")
        print(f"shardline-install-kclpy: skipped {removed} KCL jar downloads (no Java daemon installed)")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--use-pep517",
                "--no-build-isolation",
                str(source),
            ],
            check=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shardline-install-kclpy", description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=DEFAULT_VERSION)
    parser.add_argument("--sha256", help="expected sha256 of the sdist (needed for an unpinned --version)")
    parser.add_argument("--if-missing", action="store_true", help="do nothing when amazon_kclpy imports")
    args = parser.parse_args(argv)
    if args.if_missing and importlib.util.find_spec("amazon_kclpy") is not None:
        return 0
    try:
        install(args.version, args.sha256)
    except (KclpyInstallError, subprocess.CalledProcessError) as exc:
        print(f"shardline-install-kclpy: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
