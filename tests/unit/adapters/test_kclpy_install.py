"""shardline-install-kclpy: the amazon-kclpy sdist is checked against its pinned sha256, and built
without the KCL jar downloads and without setup_requires fetches."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from consumers.adapters import kclpy_install

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <properties><kcl.version>3.0.0</kcl.version></properties>
  <dependencies>
    <dependency><groupId>software.amazon.kinesis</groupId><artifactId>amazon-kinesis-client</artifactId></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId></dependency>
  </dependencies>
</project>
"""
_SETUP = 'setup(name="amazon_kclpy", setup_requires=["pytest-runner"], install_requires=["boto3"])\n'


def _sdist(directory: Path) -> Path:
    archive = directory / "amazon_kclpy-3.2.0.tar.gz"
    with tarfile.open(archive, "w:gz") as sdist:
        for name, text in (("pom.xml", _POM), ("setup.py", _SETUP)):
            data = text.encode()
            info = tarfile.TarInfo(f"amazon_kclpy-3.2.0/{name}")
            info.size = len(data)
            sdist.addfile(info, io.BytesIO(data))
    return archive


def _fake_pip(template: Path, calls: list[list[str]], built: dict[str, str]) -> object:

    def run(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        if "download" in command:
            dest = Path(command[command.index("--dest") + 1])
            (dest / template.name).write_bytes(template.read_bytes())
        else:
            source = Path(command[-1])
            built["pom"] = (source / "pom.xml").read_text()
            built["setup"] = (source / "setup.py").read_text()
        return subprocess.CompletedProcess(command, 0, "", "")

    return run


def test_an_sdist_that_does_not_match_its_pin_is_never_built(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", _fake_pip(_sdist(tmp_path), calls, {}))
    with pytest.raises(kclpy_install.KclpyInstallError, match="does not match"):
        kclpy_install.install("3.2.0")  # the pinned hash is PyPI's, not this fake's
    assert len(calls) == 1 and "download" in calls[0]


def test_a_matching_sdist_is_built_without_jars_or_setup_requires(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[list[str]] = []
    built: dict[str, str] = {}
    template = _sdist(tmp_path)
    monkeypatch.setattr(subprocess, "run", _fake_pip(template, calls, built))
    digest = hashlib.sha256(template.read_bytes()).hexdigest()
    kclpy_install.install("3.2.0", sha256=digest)
    assert "<dependency>" not in built["pom"] and "kcl.version" in built["pom"]
    assert "pytest-runner" not in built["setup"] and "boto3" in built["setup"]
    assert "--no-build-isolation" in calls[-1]


def test_an_unpinned_version_needs_an_explicit_hash() -> None:
    with pytest.raises(kclpy_install.KclpyInstallError, match="--sha256"):
        kclpy_install.install("0.0.1")
    assert kclpy_install.main(["--version", "0.0.1"]) == 2


@pytest.mark.parametrize("name", ["../escape.txt", "/abs.txt"])
def test_members_outside_the_unpack_directory_are_refused_without_extraction_filters(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as sdist:
        info = tarfile.TarInfo(name)
        info.size = 1
        sdist.addfile(info, io.BytesIO(b"x"))
    monkeypatch.delattr(tarfile, "data_filter", raising=False)  # as on Python 3.11.2
    (tmp_path / "out").mkdir()
    with tarfile.open(archive) as sdist, pytest.raises(kclpy_install.KclpyInstallError, match="refusing"):
        kclpy_install._extract(sdist, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_a_plain_sdist_unpacks_without_extraction_filters(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    (tmp_path / "out").mkdir()
    with tarfile.open(_sdist(tmp_path)) as sdist:
        kclpy_install._extract(sdist, tmp_path / "out")
    assert "kcl.version" in (tmp_path / "out" / "amazon_kclpy-3.2.0" / "pom.xml").read_text()
