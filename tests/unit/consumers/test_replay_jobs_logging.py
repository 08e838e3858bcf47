"""`shardline replay run --log-level`: the shared logging set-up, never the AWS SDK's DEBUG logs
(botocore logs request and response bodies, i.e. record payloads, at DEBUG)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.replay.jobs_cli import build_parser, main

SDK_LOGGERS = ("botocore", "aiobotocore", "urllib3", "s3transfer")


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in SDK_LOGGERS}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, saved in levels.items():
            logging.getLogger(name).setLevel(saved)


@pytest.mark.usefixtures("restored_logging")
def test_debug_keeps_the_sdk_loggers_at_warning(tmp_path: Path) -> None:
    args = build_parser("shardline replay", "run").parse_args(
        ["--manifest", str(tmp_path / "missing.json"), "--log-level", "debug"]
    )
    assert main("run", args) != 0  # no such manifest: refused, after logging was set up
    assert logging.getLogger().level == logging.DEBUG
    for name in SDK_LOGGERS:
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING, name
    assert not logging.getLogger("botocore.endpoint").isEnabledFor(logging.DEBUG)


def test_an_unknown_level_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser("shardline replay", "run").parse_args(["--manifest", "m.json", "--log-level", "loud"])
    assert exited.value.code == 2
    assert "--log-level" in capsys.readouterr().err
