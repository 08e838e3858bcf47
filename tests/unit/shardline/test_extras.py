"""A missing optional dependency is one line naming the extra to install, exit status 2, for
every command-line entry point; anything else still raises."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

from shardline.extras import (
    EXTRA_INSTALL,
    MODULE_EXTRAS,
    MissingExtraError,
    extra_for_module,
    require_module,
    run_command,
)
from shardline.local.paths import STATE_ENV

REPO = Path(__file__).resolve().parents[3]


def _missing(name: str) -> int:
    raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def test_a_missing_optional_module_is_one_line_naming_the_extra() -> None:
    err = io.StringIO()
    assert run_command("stream-bench", lambda: _missing("moto.server"), prefer="bench", stderr=err) == 2
    (line,) = err.getvalue().splitlines()
    assert line.startswith("stream-bench: ") and "pip install 'shardline[bench]'" in line and "'moto'" in line


def test_the_command_picks_the_extra_when_several_provide_the_module() -> None:
    err = io.StringIO()
    assert run_command("shardline local", lambda: _missing("moto"), prefer="local", stderr=err) == 2
    assert "shardline[local]" in err.getvalue()
    assert extra_for_module("moto", prefer="kafka") == "bench"  # not an extra that has it: the first


def test_a_module_no_extra_provides_still_raises() -> None:
    with pytest.raises(ModuleNotFoundError):
        run_command("shardline", lambda: _missing("not_a_dependency"))


def test_require_module_checks_without_importing() -> None:
    require_module("json", "bench")
    with pytest.raises(MissingExtraError, match=r"shardline\[local\]"):
        require_module("surely_not_installed_module", "local")
    with pytest.raises(ValueError):
        require_module("moto.server", "local")


def test_the_kcl_extra_says_how_kclpy_is_installed() -> None:
    assert "shardline-install-kclpy" in str(MissingExtraError("amazon_kclpy", "kcl"))


def _extras() -> dict[str, list[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    return extras


def test_every_extra_named_for_a_module_exists_and_lists_its_distribution() -> None:
    from importlib.metadata import packages_distributions

    extras = _extras()
    providers = packages_distributions()

    def closure(extra: str) -> set[str]:
        names: set[str] = set()
        for requirement in extras[extra]:
            match = re.match(r"([A-Za-z0-9_.-]+)(?:\[([^\]]*)\])?", requirement)
            assert match is not None
            if match.group(1) == "shardline":
                for inner in (match.group(2) or "").split(","):
                    names |= closure(inner.strip())
            else:
                names.add(match.group(1).lower().replace("_", "-"))
        return names

    # reached through another requirement (moto[server]) or through the installer command
    indirect = {"flask", "flask_cors", "amazon_kclpy"}
    for module, named in MODULE_EXTRAS.items():
        for extra in named:
            assert extra in extras, f"{module}: no extra {extra!r} in pyproject.toml"
            if module in indirect:
                continue
            distributions = {name.lower().replace("_", "-") for name in providers.get(module, [])}
            assert distributions & closure(extra), f"{module} is not installed by shardline[{extra}]"
    assert set(EXTRA_INSTALL) <= set(extras)


def _run_without(module: str, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in which ``module`` cannot be imported."""
    blocked = f"import sys; sys.modules[{module!r}] = None\n" + code
    with tempfile.TemporaryDirectory() as state:
        # A stack of the user's own (`shardline local up`) must not change what these commands say.
        env = {**os.environ, STATE_ENV: os.path.join(state, "local-stack.json")}
        return subprocess.run(
            [sys.executable, "-c", blocked],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


_BENCH_RUN = "from benchmarks.entry import main; raise SystemExit(main(['run', '--duration', '1']))"
_LOCAL_UP = "from shardline.cli import main; raise SystemExit(main(['local', 'up', '--services', 'aws']))"


@pytest.mark.parametrize(
    ("module", "code", "extra"),
    [
        ("rich", _BENCH_RUN, "bench"),
        ("moto", _BENCH_RUN, "bench"),
        ("aiokpl", "from benchmarks.entry import main; raise SystemExit(main(['peers']))", "bench-peers"),
        (
            "confluent_kafka",
            "from shardline.cli import main; raise SystemExit(main(['consume', "
            "'kafka://127.0.0.1:9/t?group=g', '--sink', 'file:///dev/null']))",
            "kafka",
        ),
        ("moto", _LOCAL_UP, "local"),
        (
            "amazon_kclpy",
            "from consumers.adapters.kcl_entry import main; raise SystemExit(main(['--help']))",
            "kcl",
        ),
    ],
)
def test_every_entry_point_reports_a_missing_extra_in_one_line(module: str, code: str, extra: str) -> None:
    done = _run_without(module, code)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    # progress lines may come first; the error is the last line, and the only one naming the extra
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert f"pip install 'shardline[{extra}]'" in lines[-1], done.stderr[-2000:]
    assert f"'{module}'" in lines[-1]
    assert sum("shardline[" in line for line in lines) == 1
