"""Every command gives an error the exit status docs/errors.md gives it: refusals 2, run-time
failures 1.  Single-process ``replay`` exited 2 for both, and ``produce``/``tail``/``consume``
exited 1 for input they refused before starting."""

from __future__ import annotations

import argparse

import pytest

from consumers import cli as consume_cli
from consumers.replay import cli as replay_cli
from consumers.replay import jobs_cli
from shardline.cli import exit_status_for, run_async_command
from shardline.errors import (
    AccessDeniedError,
    CheckpointError,
    ConfigurationError,
    InvalidRequestError,
    MissingResourceError,
    ShardlineError,
    SinkError,
    TransientServiceError,
    ValidationError,
)

REFUSED = [
    ConfigurationError("bad option"),
    MissingResourceError("Kinesis stream", "s", "the SOURCE argument", service="kinesis"),
    ValidationError("a range that ends before it starts"),
]
FAILED = [
    TransientServiceError("kinesis: still failing"),
    AccessDeniedError("denied"),
    InvalidRequestError("the service refused the request"),
    SinkError("records neither written nor dead-lettered"),
    CheckpointError("lease table gone"),
]


@pytest.mark.parametrize("error", REFUSED + FAILED, ids=lambda error: type(error).__name__)
def test_every_command_gives_an_error_one_status(error: ShardlineError) -> None:
    expected = 2 if error in REFUSED else 1
    assert exit_status_for(error) == expected
    assert replay_cli._fail(error) == expected
    assert jobs_cli._fail(error) == expected

    async def fails() -> int:
        raise error

    assert run_async_command("tail", fails) == expected


@pytest.mark.parametrize("error", REFUSED + FAILED, ids=lambda error: type(error).__name__)
def test_consume_gives_an_error_the_same_status(
    error: ShardlineError, monkeypatch: pytest.MonkeyPatch
) -> None:
    # consume maps its errors itself (it logs them): a ValidationError such as a bad
    # --namespace exited 1, "consumer failed", though nothing had been read
    async def fails(args: argparse.Namespace) -> int:
        raise error

    monkeypatch.setattr(consume_cli, "_consume", fails)
    monkeypatch.setattr(consume_cli, "setup_logging", lambda *args: None)
    args = argparse.Namespace(log_level="INFO", log_format="text")
    assert consume_cli._run(args) == (2 if error in REFUSED else 1)
