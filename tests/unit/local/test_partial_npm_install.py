"""An ``npm ci`` that stops part-way is never taken for a complete install.

``npm ci`` replaces the whole tree, and the package whose version is checked may be
unpacked before the rest.  When an earlier install's ``.installed`` marker was still there,
a failed or interrupted re-install left a partial tree that the next start used as is.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from shardline.local import installers
from shardline.local.errors import PrerequisiteMissingError


def test_a_reinstall_that_fails_part_way_is_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHARDLINE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    prefix = installers._npm_prefix()
    package_dir = prefix / "node_modules" / installers.KINESALITE.name
    package_dir.mkdir(parents=True)
    (prefix / ".installed").touch()  # an earlier install, whose tree has since been damaged
    runs: list[list[str]] = []

    def npm_ci_unpacks_one_package_then_fails(
        command: list[str], **_: object
    ) -> subprocess.CompletedProcess[str]:
        runs.append(command)
        package_dir.mkdir(parents=True, exist_ok=True)
        (package_dir / "package.json").write_text(json.dumps({"version": installers.KINESALITE.version}))
        return subprocess.CompletedProcess(command, 1, "", "npm error network aborted\n")

    monkeypatch.setattr(subprocess, "run", npm_ci_unpacks_one_package_then_fails)
    with pytest.raises(PrerequisiteMissingError, match="npm ci"):
        installers.ensure_npm_package(installers.KINESALITE)
    with pytest.raises(PrerequisiteMissingError, match="npm ci"):
        installers.ensure_npm_package(installers.KINESALITE)
    assert len(runs) == 2  # the partial tree was not used
    assert not (prefix / ".installed").exists()
