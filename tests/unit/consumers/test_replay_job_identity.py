"""`shardline replay --name NAME`: one run of a job at a time, and always over the range it began.

Its checkpoints (SQLite, namespace ``replay-NAME``) say where each partition stopped.  A second
run started while the first ran took every partition's lease as its own and wrote the same
records beside it; a run under the same name over another window found every partition
"already complete" and replayed nothing, with exit status 0.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import consumers.checkpoint.sqlite as sqlite_store
from consumers.replay import cli as replay_cli
from consumers.replay.local_job import JobRunningError, job_lock, lock_path
from shardline.cli import main
from shardline.errors import CheckpointError
from shardline.records import ConsumedRecord, KinesisPosition

BOUND = 10.0
T1, T2, T3 = "2024-05-01T00:00:00+00:00", "2024-05-02T00:00:00+00:00", "2024-05-03T00:00:00+00:00"


class _Shard:
    """One shard of three records; a read waits for ``hold`` while it is given."""

    def __init__(self) -> None:
        self.hold: threading.Event | None = None
        self.reading = threading.Event()
        self.reads = 0

    async def partitions(self) -> list[str]:
        return ["shardId-0"]

    async def read(
        self, partition: str, after: str | None
    ) -> AsyncIterator[tuple[Sequence[ConsumedRecord], str]]:
        self.reads += 1
        hold, self.hold = self.hold, None
        self.reading.set()
        if hold is not None:
            assert await asyncio.to_thread(hold.wait, BOUND), "the held read was never let go"
        for sequence in range(int(after or 0) + 1, 4):
            position = KinesisPosition("events", partition, str(sequence))
            yield [ConsumedRecord(b"v%d" % sequence, "k", position)], str(sequence)


@pytest.fixture
def shard(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Shard]:
    """The replay command over :class:`_Shard`, with no resource checks (no network)."""
    reader = _Shard()

    async def no_checks(*_: Any, **__: Any) -> None:
        return None

    async def the_shard(*_: Any, **__: Any) -> _Shard:
        return reader

    monkeypatch.setattr(replay_cli, "run_checks", no_checks)
    monkeypatch.setattr(replay_cli, "_reader", the_shard)
    yield reader


def _replay(tmp_path: Path, *arguments: str) -> int:
    return main(
        [
            "replay",
            "kinesis://events",
            "--name",
            "fix",
            "--sink",
            f"file://{tmp_path / 'out.jsonl'}",
            "--checkpoint",
            str(tmp_path / "replay.db"),
            *arguments,
        ]
    )


def test_the_same_name_over_another_window_is_refused_not_skipped(
    shard: _Shard, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _replay(tmp_path, "--from-time", T1, "--to-time", T2) == 0
    assert "records read: 3" in capsys.readouterr().out
    # before: exit 0, "partitions: 1 (1 already complete)", and the new window never read
    assert _replay(tmp_path, "--from-time", T2, "--to-time", T3) == 2
    err = capsys.readouterr().err
    assert "JobRangeMismatchError" in err and "another --name" in err and err.count("\n") == 1
    assert shard.reads == 1


def test_a_rerun_of_the_same_range_resumes_whatever_time_zone_names_it(
    shard: _Shard, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _replay(tmp_path, "--from-time", T1, "--to-time", T2) == 0
    capsys.readouterr()
    assert _replay(tmp_path, "--from-time", "2024-05-01T02:00:00+02:00", "--to-time", T2) == 0
    assert "(1 already complete)" in capsys.readouterr().out


def test_a_name_with_no_checkpoint_yet_takes_the_new_range(
    shard: _Shard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        raise CheckpointError("stopped after binding the name, before any checkpoint")

    with monkeypatch.context() as patch:
        patch.setattr(sqlite_store.SQLiteCheckpointStore, "__init__", refuse)
        assert _replay(tmp_path, "--from-time", T1, "--to-time", T2) == 1
    assert _replay(tmp_path, "--from-time", T2, "--to-time", T3) == 0  # nothing was done under T1..T2


def test_a_second_run_while_the_first_runs_is_refused(
    shard: _Shard, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hold = shard.hold = threading.Event()
    first: list[int] = []
    running = threading.Thread(target=lambda: first.append(_replay(tmp_path)), daemon=True)
    running.start()
    try:
        assert shard.reading.wait(BOUND), "the first run never began to read"
        # before: the second run took the shard's lease and replayed it beside the first
        assert _replay(tmp_path) == 1
        err = capsys.readouterr().err
        assert "JobRunningError" in err and "running in another process" in err
        assert shard.reads == 1
    finally:
        hold.set()
        running.join(BOUND)
    assert first == [0]
    assert _replay(tmp_path) == 0  # the lock went with the run that held it


def test_two_names_of_one_checkpoint_file_share_its_lock(tmp_path: Path) -> None:
    database = tmp_path / "replay.db"
    database.touch()
    (tmp_path / "link.db").symlink_to(database)
    with job_lock(str(tmp_path / "link.db"), "replay-fix", name="fix"):
        with pytest.raises(JobRunningError), job_lock(str(database), "replay-fix", name="fix"):
            pass
        with job_lock(str(database), "replay-other", name="other"):  # another job of the same file
            pass
    long = "replay-" + "n" * 248
    assert len(lock_path(str(database), long).name.encode()) <= 255
