"""A file sink that cannot append (full disk, read-only file) stops the run: the records are
not the file's problem, so none of them is bisected into the dead letter."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

import consumers.sinks.jsonl as jsonl
from consumers._pipeline_write import WriteWorkflow
from consumers.sinks.deadletter import MemoryDeadLetter
from consumers.sinks.file import FileSink
from shardline.errors import SinkError
from shardline.metrics import NullObserver
from shardline.records import ConsumedRecord, KinesisPosition
from shardline.retry import RetryPolicy

NO_WAIT = RetryPolicy(max_attempts=3, deadline=None, initial_backoff=0.0, max_backoff=0.0)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
async def test_a_file_that_cannot_be_appended_to_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    def refuse(path: Any) -> Any:
        raise OSError(code, "refused by the file system")

    monkeypatch.setattr(jsonl, "open_private_append", refuse)
    sink = FileSink(tmp_path / "out.jsonl")
    dead = MemoryDeadLetter()
    workflow = WriteWorkflow(sink, dead, retry=NO_WAIT, entry_attempts=3, observer=NullObserver())
    records = [
        ConsumedRecord(b"payload-bytes", "k", KinesisPosition("s", "shardId-0", str(n))) for n in range(1, 5)
    ]
    resolved = [False] * len(records)
    with pytest.raises(SinkError, match="cannot append") as raised:
        await workflow.write(records, [r.position for r in records], resolved)
    assert "payload-bytes" not in str(raised.value)
    assert dead.entries == {}
    assert not any(resolved)
    assert sink.stats.calls == 1  # no bisection
