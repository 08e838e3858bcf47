"""A table of the mistakes people make with every command: each is one line, the right exit
status, and never a traceback.

The commands run in this process (their ``main`` functions, as the console scripts call them)
against a moto server that has none of the resources named, so a missing stream, table or
bucket is reported the way a fresh account would see it.  A traceback would surface here as an
exception out of ``main``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from benchmarks.entry import main as stream_bench
from shardline.cli import main as shardline

pytestmark = pytest.mark.integration

MISSING = f"absent-{uuid.uuid4().hex[:8]}"
SINK = "file:///tmp/shardline-mistakes-never.jsonl"
CHECKPOINT = "memory://"
KINESIS = ["kinesis://s", "--checkpoint", CHECKPOINT]

SHARDLINE_MISTAKES: list[tuple[list[str], int, str]] = [
    (["nosuch"], 2, "invalid choice"),
    (["consume"], 2, "SOURCE"),
    (["consume", "kinesis://s", "--sink", SINK], 2, "--checkpoint"),
    (["consume", *KINESIS, "--sink", "nosuch://x"], 2, "unknown sink scheme"),
    (["consume", *KINESIS, "--sink", SINK, "--start", "yesterday"], 2, "--start"),
    (["consume", "kinesis://s", "--checkpoint", "mysql://x", "--sink", SINK], 2, "checkpoint"),
    (["consume", *KINESIS, "--sink", SINK, "--mode", "efo"], 2, "--consumer-name"),
    (["consume", f"kinesis://{MISSING}", "--checkpoint", CHECKPOINT, "--sink", SINK], 2, MISSING),
    (["consume", "kafka://127.0.0.1:9/t", "--sink", SINK], 2, "group"),
    (["replay", "--name", "n", "--sink", SINK], 2, "SOURCE"),
    (["replay", "plan", "--slices", "2"], 2, "--checkpoint"),
    (["replay", "kinesis:/s", "--name", "n", "--sink", SINK], 2, "SOURCE must be"),
    (["replay", f"kinesis://{MISSING}", "--name", "n", "--sink", SINK], 2, MISSING),
    (["replay", f"s3://{MISSING}/p/", "--name", "n", "--sink", SINK], 2, MISSING),
    (["tail"], 2, "SOURCE"),
    (["tail", f"kinesis://{MISSING}"], 2, MISSING),
    (["tail", "kinesis://s", "--start", "sequence:123"], 2, "--shard"),
    (["tail", "kinesis://s", "-n", "0"], 2, "--max-records"),
    (["tail", "kinesis://s", "--partition", "1"], 2, "--shard"),
    (["produce"], 2, "TARGET"),
    (["produce", "kinesis://s", "--key", "md5"], 2, "--key"),
    (["produce", f"kinesis://{MISSING}"], 2, MISSING),
    (["local", "sideways"], 2, "invalid choice"),
]

STREAM_BENCH_MISTAKES: list[tuple[list[str], int, str]] = [
    (["nosuch"], 2, "invalid choice"),
    (["run", "--rate", "-5"], 2, "--rate"),
    (["run", "--topic", "t"], 2, "msk"),
    (["hotshards"], 2, "--stream"),
    (["hotshards", "--stream", MISSING, "--duration", "1"], 2, MISSING),
    (["compare", "a.json"], 2, "b"),
    (["compare", "missing-a.json", "missing-b.json"], 2, "no such file"),
    (["compare", "report.html", "report.html"], 2, "not a stream-bench result.json"),
    (["compare", "other.json", "other.json"], 2, "not a valid stream-bench result.json"),
    (["peers", "--family", "pigeon"], 2, "invalid choice"),
    (["run", "--workers", "3", "--shards", "2"], 2, "--workers"),
    (["run", "--workers", "2", "--worker-id", "0"], 2, "--target kinesis"),
    (["run", "--worker-id", "first"], 2, "worker id"),
    (["merge", "no-such-partials"], 2, "no such directory"),
]


@pytest.fixture
def account(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "report.html").write_text("<html><body>not json</body></html>")
    (tmp_path / "other.json").write_text(json.dumps({"hello": "world"}))
    return tmp_path


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize(("argv", "status", "named"), SHARDLINE_MISTAKES, ids=lambda v: str(v))
def test_shardline_mistakes(
    argv: list[str], status: int, named: str, account: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = shardline(argv)
    except SystemExit as exited:  # argparse
        code = exited.code  # type: ignore[assignment]
    assert code == status
    assert named in _one_line(capsys)
    assert not (account / "replay-n.db").exists()  # refused before anything was created


@pytest.mark.parametrize(("argv", "status", "named"), STREAM_BENCH_MISTAKES, ids=lambda v: str(v))
def test_stream_bench_mistakes(
    argv: list[str], status: int, named: str, account: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = stream_bench(argv)
    except SystemExit as exited:
        code = exited.code  # type: ignore[assignment]
    assert code == status
    assert named in _one_line(capsys)
