"""``--out`` that cannot take the files: refused before the run, or failing without a cut file.

A full disk is a real one here: the file-size limit (``RLIMIT_FSIZE``) makes the kernel refuse
writes past a few kilobytes, as a disk that fills up does.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.cli import _write_files, main
from benchmarks.merge import partial_from_outcome, read_partials, write_partial
from benchmarks.outfiles import OutputWriteError
from benchmarks.run import RunOutcome

resource = pytest.importorskip("resource")

_FILE_SIZE_LIMIT = 4096
"""Smaller than any result.json, report.html or partial: each write of one fails part way."""


@contextlib.contextmanager
def _full_disk() -> Iterator[None]:
    """Writes past :data:`_FILE_SIZE_LIMIT` bytes of a file fail (EFBIG) while inside."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the error, not the signal's kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (_FILE_SIZE_LIMIT, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_an_out_path_that_is_a_file_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "results"
    a_file.write_text("not a directory")
    assert main(["run", "--duration", "3", "--out", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert f"--out {a_file}: cannot write files there" in err
    assert "connection" not in err  # it was reported as a connection failure to retry
    assert a_file.read_text() == "not a directory"


def test_one_machines_part_checks_its_out_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[object] = []

    async def run_kinesis(*args: object, **kwargs: object) -> None:
        ran.append(args)
        raise AssertionError("the run started although its partial could not be written")

    monkeypatch.setattr("benchmarks.run.run_kinesis", run_kinesis)
    a_file = tmp_path / "parts"
    a_file.write_text("")
    args = ["run", "--target", "kinesis", "--stream", "s", "--shards", "2", "--workers", "2"]
    assert main([*args, "--worker-id", "1", "--out", str(a_file)]) == 2
    assert ran == []
    assert "cannot write files there" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE's EFBIG as Linux reports it")
def test_a_full_disk_keeps_the_previous_result_and_says_so(outcome: RunOutcome, tmp_path: Path) -> None:
    previous = {"result.json": '{"previous": true}', "report.html": "<p>previous</p>"}
    for name, text in previous.items():
        (tmp_path / name).write_text(text)
    with _full_disk(), pytest.raises(OutputWriteError, match=r"result\.json"):
        _write_files(outcome, tmp_path)
    for name, text in previous.items():
        assert (tmp_path / name).read_text() == text, f"{name} was cut or replaced"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(previous), "a temporary file stayed"


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE's EFBIG as Linux reports it")
def test_a_partial_cut_by_a_full_disk_is_not_left_for_merge(outcome: RunOutcome, tmp_path: Path) -> None:
    partial = partial_from_outcome(outcome)
    assert len(json.dumps(partial)) > _FILE_SIZE_LIMIT
    with _full_disk(), pytest.raises(OutputWriteError):
        write_partial(partial, str(tmp_path))
    assert list(tmp_path.iterdir()) == []
    # the retry, with room again, writes the whole partial
    write_partial(partial, str(tmp_path))
    assert read_partials(str(tmp_path)) == [json.loads(json.dumps(partial))]
