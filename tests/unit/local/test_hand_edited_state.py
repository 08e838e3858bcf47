"""A hand-edited or damaged state file is refused with one line, never run or half-believed.

The state file is plain JSON; ``shardline local env`` prints its environment for
``eval "$(shardline local env)"``, and ``down`` sends signals to the pids it names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from shardline.cli import main
from shardline.local import stack
from shardline.local.environment import export_lines
from shardline.local.errors import LocalEmulatorError

_SERVER = {
    "name": "moto",
    "services": ["aws"],
    "endpoint": "http://127.0.0.1:1",
    "pid": 2**22 + 1,  # above the kernel's pid_max: never a running process
    "argv": ["python", "-m", "moto.server"],
    "log_path": "/nonexistent/moto.log",
    "start_time": 1,
}


@pytest.fixture
def state_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHARDLINE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "state.json"
    monkeypatch.setenv("SHARDLINE_LOCAL_STATE", str(path))
    return path


def _write(path: Path, servers: Sequence[object] = (), environment: object = None) -> None:
    environment = {"AWS_REGION": "us-east-1"} if environment is None else environment
    path.write_text(
        json.dumps({"run_dir": "/nonexistent/run-x", "servers": list(servers), "environment": environment})
    )


def test_env_never_prints_a_name_the_shell_would_run(
    state_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(state_path, environment={"X=1; touch /tmp/owned; Y": "v"})
    assert main(["local", "env"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "unreadable local stack state" in err and "Traceback" not in err


def test_env_quotes_values_with_quotes_spaces_and_newlines(
    state_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    value = 'it\'s "a" $(x) `y` \\ z\nnext'
    _write(state_path, environment={"AWS_REGION": value})
    assert main(["local", "env"]) == 0
    assert "export AWS_REGION='it'\"'\"'s \"a\" $(x) `y` \\ z\nnext'" in capsys.readouterr().out


@pytest.mark.parametrize(
    "record",
    [
        {"environment": []},
        {"environment": None},
        {"environment": {"AWS_REGION": 1}},
        {"servers": [dict(_SERVER, pid=1e400)]},  # json.dumps writes Infinity
        {"servers": [dict(_SERVER, pid=0)]},
        {"servers": [dict(_SERVER, pid=-1)]},
        {"servers": [dict(_SERVER, pid="12")]},
        {"servers": [dict(_SERVER, pid=True)]},
        {"servers": [dict(_SERVER, start_time=1.5)]},
        {"servers": [dict(_SERVER, argv="python -m moto.server")]},
        {"servers": ["moto"]},
        {"servers": {"moto": _SERVER}},
        {"run_dir": ["/x"]},
    ],
)
@pytest.mark.parametrize("action", ["status", "env", "down"])
def test_a_mistyped_state_is_one_line_and_exit_2(
    state_path: Path, capsys: pytest.CaptureFixture[str], record: dict[str, object], action: str
) -> None:
    base: dict[str, object] = {"run_dir": "/nonexistent/run-x", "servers": [_SERVER], "environment": {}}
    state_path.write_text(json.dumps({**base, **record}))
    assert main(["local", action]) == 2
    _, err = capsys.readouterr()
    assert err.startswith(f"shardline local {action}: unreadable local stack state"), err
    assert state_path.exists()  # down stops nothing and forgets nothing it cannot read


def test_deeply_nested_state_is_one_line(state_path: Path) -> None:
    state_path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(LocalEmulatorError, match="unreadable"):
        stack.load_state(state_path)


def test_a_state_up_wrote_still_reads_back(state_path: Path) -> None:
    _write(state_path, [_SERVER, dict(_SERVER, name="tansu", start_time=None)])
    state = stack.load_state(state_path)
    assert state is not None
    assert [server.name for server in state.servers] == ["moto", "tansu"]
    assert state.servers[1].start_time is None
    assert state.environment == {"AWS_REGION": "us-east-1"}


def test_export_lines_refuses_names_that_are_not_shell_identifiers() -> None:
    with pytest.raises(ValueError, match="not shell variable names"):
        export_lines({"A;B": "x"})
    assert export_lines({"A_1": "x y"}) == ["unset AWS_PROFILE", "export A_1='x y'"]
