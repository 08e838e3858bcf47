"""``run_until_signal(started=...)``: the start is announced only once a signal drains.

``consume`` logged "consumer starting" before the handlers were installed; a SIGTERM sent on
seeing that line could meet the default action and kill the process without a drain or a
checkpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from consumers.pipeline import Pipeline, PipelineConfig, run_until_signal
from shardline.retry import RetryPolicy
from tests.unit.consumers.pipeline_doubles import RecordingSink, ScriptedSource, batch

FAST = PipelineConfig(
    checkpoint_interval=3600,
    sink_retry=RetryPolicy(max_attempts=None, deadline=None, initial_backoff=0.0, max_backoff=0.0),
)


async def test_a_sigterm_sent_when_started_is_announced_drains() -> None:
    source = ScriptedSource([batch("a", 1, 3)], endless=True)
    sink = RecordingSink()
    pipeline = Pipeline(source, sink, config=FAST)
    handlers: list[object] = []

    def started() -> None:
        handlers.append(signal.getsignal(signal.SIGTERM))
        os.kill(os.getpid(), signal.SIGTERM)  # what a supervisor does on reading the line

    status = await asyncio.wait_for(run_until_signal(pipeline, started=started), timeout=10)
    assert status == 0
    assert handlers and handlers[0] not in (signal.SIG_DFL, signal.SIG_IGN, None)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # removed again on return


async def test_consume_logs_its_start_only_once_sigterm_drains(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import consumers.kinesis as kinesis
    from consumers import cli

    source = ScriptedSource([batch("shardId-0", 1, 3)], endless=True)
    monkeypatch.setattr(kinesis, "KinesisSource", lambda *args, **kwargs: source)

    async def no_checks(checks: Any) -> None:
        return None

    monkeypatch.setattr(cli, "run_checks", no_checks)
    terms: list[int] = []

    class SignalOnStart(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == "consumer starting":
                os.kill(os.getpid(), signal.SIGTERM)  # what a supervisor does on reading the line

    handler = SignalOnStart()
    # stands in for the default action: a SIGTERM that reaches it was not drained
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: terms.append(signum))
    level = cli.logger.level
    cli.logger.setLevel(logging.INFO)
    cli.logger.addHandler(handler)
    try:
        parser = argparse.ArgumentParser()
        cli._configure(parser)
        args = parser.parse_args(
            [
                "kinesis://s",
                "--checkpoint",
                "memory://",
                "--sink",
                f"file://{tmp_path / 'out.jsonl'}",
                "--progress-interval",
                "0",
            ]
        )
        # before: the signal went to the process's own handler and the run went on reading
        status = await asyncio.wait_for(cli._consume(args), timeout=10)
    finally:
        cli.logger.removeHandler(handler)
        cli.logger.setLevel(level)
        signal.signal(signal.SIGTERM, previous)
    assert status == 0
    assert terms == []
