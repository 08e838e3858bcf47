"""``shardline consume --metrics emf``: a metrics write that fails never ends the consumer's
metrics for good, nor skips closing what the consumer opened.

The periodic flush ran in a task nobody awaited: the first failed write (stdout closed, a
full disk) ended it unnoticed and the consumer ran on without metrics; the final flush then
raised again, skipping the closes of the source, sink and checkpoint store.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import pytest

from consumers import cli

BOUND = 5.0  # seconds; only there so that a hang fails instead of sticking


class FlakyExporter:
    """Every write fails until ``fail_first`` writes were tried; counts them."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.flushes = 0
        self.written = 0
        self.more = asyncio.Event()

    def flush(self, timeout: float = 0.0) -> int:
        self.flushes += 1
        if self.flushes >= 3:
            self.more.set()
        if self.flushes <= self.fail_first:
            raise OSError(28, "No space left on device")
        self.written += 1
        return 0


async def test_a_failed_periodic_flush_is_logged_once_and_flushing_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = FlakyExporter(fail_first=2)
    task = asyncio.create_task(cli._flush_periodically(exporter, 0.001))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(exporter.more.wait(), BOUND)  # before: the task died at the first
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert exporter.written >= 1
    warnings = [r for r in caplog.records if r.getMessage().startswith("writing metrics failed")]
    assert len(warnings) == 1 and warnings[0].error_type == "OSError"  # type: ignore[attr-defined]


async def test_a_failing_last_flush_still_closes_source_sink_and_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import consumers.sinks.uri as sink_uris
    from consumers.kinesis import KinesisSource

    closed: list[str] = []
    exporter = FlakyExporter(fail_first=1_000)

    def counting(name: str, close: Any) -> Any:
        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            closed.append(name)
            return await close(*args, **kwargs)

        return wrapped

    real_store, real_sink = cli._checkpoint_store, sink_uris.sink_from_uri

    def checkpoint_store(uri: str, namespace: str | None) -> Any:
        store, must_exist = real_store(uri, namespace)
        monkeypatch.setattr(store, "close", counting("store", store.close))
        return store, must_exist

    def sink_from_uri(uri: str, **options: Any) -> Any:
        sink = real_sink(uri, **options)
        monkeypatch.setattr(sink, "close", counting("sink", sink.close))
        return sink

    async def no_checks(checks: Any) -> None:
        return None

    async def run_until_signal(pipeline: Any, **options: Any) -> int:
        return 0  # the run itself is not what this test is about

    monkeypatch.setattr(cli, "run_checks", no_checks)
    monkeypatch.setattr(cli, "run_until_signal", run_until_signal)
    monkeypatch.setattr(cli, "EmfExporter", lambda stream: exporter)
    monkeypatch.setattr(cli, "_checkpoint_store", checkpoint_store)
    monkeypatch.setattr(sink_uris, "sink_from_uri", sink_from_uri)
    monkeypatch.setattr(KinesisSource, "close", counting("source", KinesisSource.close))
    parser = argparse.ArgumentParser()
    cli._configure(parser)
    args = parser.parse_args(
        [
            "kinesis://s",
            "--checkpoint",
            f"sqlite:///{tmp_path / 'leases.db'}",
            "--sink",
            f"file://{tmp_path / 'out.jsonl'}",
            "--metrics",
            "emf",
            "--progress-interval",
            "0",
        ]
    )
    status = await asyncio.wait_for(cli._consume(args), BOUND)  # before: OSError, nothing closed
    assert status == 0
    assert exporter.flushes >= 1 and exporter.written == 0
    assert sorted(closed) == ["sink", "source", "store"]
