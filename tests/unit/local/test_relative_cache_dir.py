"""A relative SHARDLINE_CACHE_DIR still gives servers absolute paths (they run in their own directory)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from shardline.local import paths
from shardline.local.processes import launch


def test_a_relative_cache_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHARDLINE_CACHE_DIR", "cache/shardline")

    assert paths.cache_dir() == tmp_path / "cache" / "shardline"
    run_dir = paths.new_run_dir()
    assert run_dir.is_absolute() and run_dir.parent == tmp_path / "cache" / "shardline" / "runs"


def test_a_server_started_in_its_own_directory_finds_a_file_of_the_run_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHARDLINE_CACHE_DIR", "cache")
    server_dir = paths.new_run_dir() / "influxdb"
    server_dir.mkdir()
    config = server_dir / "server.conf"  # as start_influxdb writes its config
    config.write_text("ok")
    code = "import sys; print(open(sys.argv[1]).read())"
    process = launch(
        "reader", [sys.executable, "-c", code, str(config)], log_path=server_dir / "log", cwd=server_dir
    )
    assert process.wait(timeout=60) == 0
