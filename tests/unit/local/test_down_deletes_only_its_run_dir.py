"""``shardline local down`` deletes the run directory its state file names only when ``up`` made
it: the state file is plain JSON, and ``down`` deleted whatever directory it named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shardline.local import stack
from shardline.local.paths import new_run_dir


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARDLINE_CACHE_DIR", str(tmp_path / "cache"))


def _state(tmp_path: Path, run_dir: Path) -> Path:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"run_dir": str(run_dir), "servers": [], "environment": {}}))
    return path


def test_a_directory_up_did_not_make_is_left_alone(tmp_path: Path) -> None:
    precious = tmp_path / "home" / "projects"
    precious.mkdir(parents=True)
    (precious / "work.txt").write_text("keep me")
    state = _state(tmp_path, precious)
    assert stack.down(state_path=state) == []
    assert (precious / "work.txt").read_text() == "keep me"
    assert not state.exists()  # the stack itself is forgotten


def test_its_own_run_directory_is_deleted(tmp_path: Path) -> None:
    run_dir = new_run_dir()
    (run_dir / "kinesis-mock.log").write_text("log")
    stack.down(state_path=_state(tmp_path, run_dir))
    assert not run_dir.exists()


def test_a_link_into_the_runs_folder_does_not_pass_for_one(tmp_path: Path) -> None:
    precious = tmp_path / "data"
    precious.mkdir()
    runs = new_run_dir().parent
    (runs / "run-link").symlink_to(precious, target_is_directory=True)
    stack.down(state_path=_state(tmp_path, runs / "run-link"))
    assert precious.exists()
