#!/usr/bin/env python3
"""Install amazon-kclpy's Python half without the KCL jars.

``pip install amazon-kclpy`` runs a setup.py that downloads the Kinesis Client Library jars
(the Java MultiLangDaemon) from Maven Central; where only the package registries are
reachable that build fails.  The record-processor side (``amazon_kclpy.kcl``,
``amazon_kclpy.v3.processor``) is pure Python and needs no jar.  setup.py reads the jar list
from the sdist's pom.xml, so this script downloads the sdist, empties the dependency list of
that pom (keeping its ``properties`` section, which setup.py also reads) and installs the result
with the same interpreter.  Deployments that run the daemon install the jars separately
(``python setup.py download_jars`` in the sdist, or the KCL's Maven artefacts).

Usage: python deploy/scripts/install_kclpy.py [--version 3.2.0]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

DEFAULT_VERSION = "3.2.0"
_MAVEN = "{http://maven.apache.org/POM/4.0.0}"


def _neutralise_jar_downloads(pom: Path) -> int:
    """Remove every <dependency> from the pom; return how many were removed."""
    ET.register_namespace("", _MAVEN.strip("{}"))
    tree = ET.parse(pom)  # noqa: S314 - the file comes from the package index, not user input
    root = tree.getroot()
    removed = 0
    for dependencies in root.iter(f"{_MAVEN}dependencies"):
        for dependency in list(dependencies):
            dependencies.remove(dependency)
            removed += 1
    tree.write(pom, encoding="utf-8", xml_declaration=True)
    return removed


def install(version: str) -> None:
    with tempfile.TemporaryDirectory(prefix="kclpy-") as scratch:
        workdir = Path(scratch)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "--dest", str(workdir), f"amazon-kclpy=={version}"],
            check=True,
        )
        archive = next(workdir.glob("amazon*kclpy-*.tar.gz"))
        with tarfile.open(archive) as sdist:
            sdist.extractall(workdir, filter="data")
        source = next(path for path in workdir.iterdir() if path.is_dir())
        removed = _neutralise_jar_downloads(source / "pom.xml")
        print(f"install_kclpy: skipped {removed} KCL jar downloads (the Java daemon is not installed)")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", str(source)],
            check=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=DEFAULT_VERSION)
    parser.add_argument("--if-missing", action="store_true", help="do nothing when amazon_kclpy imports")
    args = parser.parse_args(argv)
    if args.if_missing and importlib.util.find_spec("amazon_kclpy") is not None:
        return 0
    install(args.version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
