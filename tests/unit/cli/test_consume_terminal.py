"""What `shardline consume` shows a person: text or JSON logs, progress lines, "caught up" per shard."""

from __future__ import annotations

import io
import json
import logging

import pytest

from consumers.pipeline import Pipeline, PipelineConfig
from consumers.progress import ConsumeProgress
from shardline.errors import CheckpointError
from shardline.logformat import JsonLogFormatter, TextLogFormatter, setup_logging
from shardline.records import Position
from tests.unit.consumers.pipeline_doubles import RecordingSink, ScriptedSource, batch


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []

    def on_event(self, name: str, value: float = 1.0, **dimensions: object) -> None:
        self.events.append((name, value))


def test_caught_up_is_logged_once_per_partition_and_rearms_when_far_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner = _Recorder()
    now = [100.0]
    progress = ConsumeProgress(inner, logger=logging.getLogger("t.progress"), clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="t.progress")
    progress.on_event("records_in", 40, partition="a")
    progress.on_event("iterator_age_ms", 5000, partition="a")
    progress.on_event("iterator_age_ms", 0, partition="a")
    progress.on_event("iterator_age_ms", 0, partition="a")
    progress.on_event("iterator_age_ms", 0, partition="b")
    logged = [(r.message, vars(r)["partition"]) for r in caplog.records]
    assert logged == [("caught up", "a"), ("caught up", "b")]
    progress.on_event("iterator_age_ms", 120_000, partition="a")
    progress.on_event("iterator_age_ms", 0, partition="a")
    assert [r.message for r in caplog.records].count("caught up") == 3
    assert len(inner.events) == 7  # everything forwarded


def test_progress_line_reports_records_lag_and_last_checkpoint(caplog: pytest.LogCaptureFixture) -> None:
    now = [10.0]
    progress = ConsumeProgress(logger=logging.getLogger("t.line"), clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="t.line")
    progress.on_event("records_in", 7, partition="a")
    progress.on_event("records_out", 5, partition="a")
    progress.on_event("iterator_age_ms", 1500, partition="a")
    progress.on_event("checkpoints_written", 1, partition="a")
    now[0] = 12.5
    progress.log()
    line = caplog.records[-1]
    assert line.message == "progress"
    seen = vars(line)
    assert (seen["records_in"], seen["records_out"], seen["max_lag_ms"]) == (7, 5, 1500)
    assert seen["last_checkpoint_s_ago"] == 2.5


def test_text_and_json_formats() -> None:
    record = logging.makeLogRecord(
        {"name": "shardline.consume", "levelname": "INFO", "msg": "caught up", "partition": "shardId-1"}
    )
    assert TextLogFormatter().format(record).endswith(" info    caught up  partition=shardId-1")
    assert json.loads(JsonLogFormatter().format(record))["partition"] == "shardId-1"


def test_auto_is_json_when_not_a_terminal() -> None:
    out = io.StringIO()
    setup_logging("INFO", "auto", stream=out)
    try:
        logging.getLogger("t.auto").info("hello", extra={"n": 1})
        assert json.loads(out.getvalue())["n"] == 1
    finally:
        logging.getLogger().handlers.clear()


def test_a_text_log_line_prints_control_characters_as_text() -> None:
    """A field can come from a stream or a bucket (an archive object's key): on a terminal its
    escape sequences would act; in JSON they are escaped by json.dumps already."""
    record = logging.makeLogRecord(
        {"msg": "archive object skipped", "levelname": "WARNING", "key": "runs/\x1b[2Jx\u009b.gz"}
    )
    line = TextLogFormatter().format(record)
    assert line.endswith("archive object skipped  key=runs/\\x1b[2Jx\\x9b.gz")
    assert "\\u001b" in JsonLogFormatter().format(record)


class _CheckpointStoreDown(ScriptedSource):
    """Every checkpoint write fails: the store is unreachable for the whole run."""

    async def checkpoint(self, partition: str, position: Position) -> bool:
        raise CheckpointError("checkpoint table unavailable", retriable=True)


async def test_progress_reports_the_last_checkpoint_written_not_the_last_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A consumer whose checkpoints fail (or whose sink is down, so nothing new is resolved)
    still runs checkpoint passes; the progress line said a checkpoint was written at each one,
    so a stuck consumer looked healthy ("last_checkpoint_s_ago": 2.0 for ever)."""
    now = [0.0]
    caplog.set_level(logging.INFO, logger="t.stuck")
    progress = ConsumeProgress(logger=logging.getLogger("t.stuck"), clock=lambda: now[0])
    pipeline = Pipeline(
        _CheckpointStoreDown([batch("shardId-0", 1, 3)]),
        RecordingSink(),
        config=PipelineConfig(checkpoint_interval=3600),
        observer=progress,
    )
    await pipeline.run()
    await pipeline._checkpoint_pass()
    progress.log()
    assert "last_checkpoint_s_ago" not in vars(caplog.records[-1])

    written = Pipeline(
        ScriptedSource([batch("shardId-0", 1, 3)]),
        RecordingSink(),
        config=PipelineConfig(checkpoint_interval=3600),
        observer=progress,
    )
    await written.run()
    now[0] = 4.0
    await written._checkpoint_pass()  # nothing new to checkpoint: the age keeps growing
    progress.log()
    assert vars(caplog.records[-1])["last_checkpoint_s_ago"] == 4.0
