"""The two commands answer --version and print their help when run bare (exit 0, not 2)."""

from __future__ import annotations

import pytest

from benchmarks.cli import main as bench_main
from shardline.cli import main as shardline_main
from shardline.cli import package_version


@pytest.mark.parametrize(("main", "name"), [(shardline_main, "shardline"), (bench_main, "stream-bench")])
def test_version(main: object, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])  # type: ignore[operator]
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"{name} {package_version()}"
    assert package_version() != "unknown"  # the installed distribution answers


@pytest.mark.parametrize(("main", "command"), [(shardline_main, "tail"), (bench_main, "hotshards")])
def test_bare_command_prints_help_and_exits_0(
    main: object, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([]) == 0  # type: ignore[operator]
    printed = capsys.readouterr().out
    assert printed.startswith("usage:") and command in printed


def test_subcommand_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        shardline_main(["tail", "--help"])
    assert "(default: latest)" in capsys.readouterr().out


def test_help_shows_each_default_once() -> None:
    """Options whose help already said their default read "(default 20) (default: 20.0)"."""
    from shardline.cli import OneLineArgumentParser

    parser = OneLineArgumentParser(prog="p")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds (default 20)")
    parser.add_argument("--shards", type=int, default=4, help="shards")
    parser.add_argument("--name", default=None, help="a name")
    text = parser.format_help()
    assert "(default 20)" in text and "(default: 20.0)" not in text
    assert "shards (default: 4)" in text and "(default: None)" not in text
