"""``stream-bench run --workers N`` and the multi-machine form (partials in S3, one merge), on real servers.

Worker processes run against moto's Kinesis server; the machine form writes partial results into
moto's S3.  The merged result's counts must equal the sum of the parts, and the merged report
must read back every record the parts acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import boto3
import pytest

from benchmarks.cli import main
from benchmarks.merge import merge_partials, read_partials
from benchmarks.result import build_result, validate_result
from benchmarks.run import RunOptions
from benchmarks.targets import KinesisTarget
from benchmarks.workers import run_worker_processes
from benchmarks.workload import WorkloadSpec
from shardline.errors import BackgroundTaskError

pytestmark = pytest.mark.integration


def _sum(partials: list[dict[str, Any]], name: str) -> int:
    return sum(sum(p["recorder"][name].values()) for p in partials)


def _assert_merged_equals_parts(result: dict[str, Any], partials: list[dict[str, Any]]) -> None:
    summary = result["summary"]
    assert summary["records_sent"] == _sum(partials, "sent")
    assert summary["records_acked"] == _sum(partials, "acked")
    assert summary["consumer_records"] == _sum(partials, "consumed")
    assert summary["bytes_acked"] == _sum(partials, "acked_bytes")
    assert summary["send_to_ack_ms"]["count"] == summary["records_acked"]
    assert summary["end_to_end_ms"]["count"] == summary["consumer_records"]
    offered = sum(s["records_total"] for s in result["shards"].values())
    assert offered == summary["records_sent"]
    parts_shards = sorted(shard for p in partials for shard in p["shard_ids"])
    assert sorted(result["shards"]) == parts_shards  # every shard, each from one worker


def test_two_worker_processes_merge_into_one_result(moto_endpoint: str, tmp_path: Path) -> None:
    options = RunOptions(
        target="kinesis",
        stream=f"bench-workers-{uuid.uuid4().hex[:6]}",
        shards=4,
        workload=WorkloadSpec(keys=200, rate=300.0, duration=3.0, record_size=128),
        workers=2,
        drain_seconds=10.0,
    )
    partials = run_worker_processes(options, KinesisTarget("kinesis", moto_endpoint))
    assert [p["worker_id"] for p in partials] == [0, 1]
    assert set(partials[0]["shard_ids"]).isdisjoint(partials[1]["shard_ids"])
    run_ids = {part["options"]["run_id"] for part in partials}
    assert len(run_ids) == 1 and None not in run_ids  # the parent gave its workers one run id
    for part in partials:
        assert _sum([part], "sent") > 0 and _sum([part], "acked") == _sum([part], "sent")
        assert _sum([part], "consumed") == _sum([part], "acked")  # each worker reads what it wrote
    result = build_result(merge_partials(partials))
    validate_result(result)
    _assert_merged_equals_parts(result, partials)
    assert abs(result["summary"]["records_sent"] - 900) <= 4  # the shares' rates add up to --rate
    assert any("merged from 2 workers" in note for note in result["notes"])


def _fails(connection: Connection, options: RunOptions, *_: Any) -> None:
    if options.worker_id == 1:
        connection.send(("error", "RuntimeError: injected failure"))
        raise SystemExit(1)
    connection.send(("done", {}))


def _dies(connection: Connection, options: RunOptions, *_: Any) -> None:
    if options.worker_id == 1:
        os._exit(3)
    connection.send(("done", {}))


@pytest.mark.parametrize(
    ("worker_main", "cause"),
    [
        (_fails, "worker 1 of 2 failed: RuntimeError: injected failure"),
        (_dies, "worker 1 of 2 died (exit code 3)"),
    ],
)
def test_a_failed_or_dead_worker_fails_the_run_with_its_cause(
    moto_endpoint: str, worker_main: Any, cause: str
) -> None:
    options = RunOptions(
        target="kinesis",
        stream=f"bench-dead-{uuid.uuid4().hex[:6]}",
        shards=2,
        workload=WorkloadSpec(keys=10, rate=10.0, duration=1.0),
        workers=2,
    )
    with pytest.raises(BackgroundTaskError, match=cause.replace("(", r"\(").replace(")", r"\)")):
        run_worker_processes(options, KinesisTarget("kinesis", moto_endpoint), worker_main=worker_main)


def test_two_machines_write_partials_to_s3_and_one_merge_reports(
    moto_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=bucket)
    stream = f"bench-machines-{uuid.uuid4().hex[:6]}"
    where = f"s3://{bucket}/runs/{stream}/"
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_endpoint}
    machines = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.cli",
                "run",
                "--target",
                "kinesis",
                "--stream",
                stream,
                "--shards",
                "2",
                "--workers",
                "2",
                "--worker-id",
                str(worker),
                "--duration",
                "3",
                "--rate",
                "200",
                "--keys",
                "100",
                "--out",
                where,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in (0, 1)
    ]
    for machine in machines:
        out, err = machine.communicate(timeout=180)
        assert machine.returncode == 0, err[-2000:]
        assert f"partial result: {where}partial-" in out
    os.environ["AWS_ENDPOINT_URL"] = moto_endpoint
    try:
        partials = read_partials(where)
        code = main(["merge", where, "--out", str(tmp_path)])
    finally:
        del os.environ["AWS_ENDPOINT_URL"]
    assert code == 0
    result = json.loads((tmp_path / "result.json").read_text())
    validate_result(result)
    assert len(partials) == 2
    _assert_merged_equals_parts(result, partials)
    assert result["summary"]["records_acked"] > 0
    assert (tmp_path / "report.html").exists()
    assert "HTML report:" in capsys.readouterr().out


def test_worker_id_comes_from_the_aws_batch_array_index(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.cli import build_parser

    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_INDEX", "3")
    args = build_parser().parse_args(["run", "--workers", "4", "--worker-id", "aws-batch"])
    assert args.worker_id == 3


def test_merge_refuses_an_incomplete_set(tmp_path: Path) -> None:
    (tmp_path / "partial-0000-of-0002.json").write_text(
        json.dumps(
            {
                "kind": "shardline.stream-bench/partial",
                "version": 1,
                "worker_id": 0,
                "workers": 2,
                "stream": "s",
            }
        )
    )
    assert main(["merge", str(tmp_path), "--out", str(tmp_path / "out")]) == 2


def _start_workers_run(moto_endpoint: str, out: Path) -> subprocess.Popen[str]:
    """A two-worker run of a minute, returned once worker 0 reports progress (records flow)."""
    env = {**os.environ, "AWS_ENDPOINT_URL_KINESIS": moto_endpoint}
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.cli",
            "run",
            "--target",
            "kinesis",
            "--shards",
            "2",
            "--workers",
            "2",
            "--duration",
            "60",
            "--rate",
            "100",
            "--keys",
            "50",
            "--out",
            str(out),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert run.stderr is not None
    for line in run.stderr:  # bounded: the run itself ends after 60 s
        if "sent" in line and "acked" in line:  # worker 0's progress: the workers are producing
            return run
    run.kill()
    raise AssertionError("the run ended before its workers made progress")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "terminal-hang-up"])
def test_ctrl_c_stops_every_worker_and_keeps_the_merged_partial_result(
    moto_endpoint: str, tmp_path: Path, sig: signal.Signals
) -> None:
    run = _start_workers_run(moto_endpoint, tmp_path)
    try:
        run.send_signal(sig)
        out, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130
    # the parent says why the run stops, once; its workers stop quietly
    assert err.count("stream-bench: interrupted") == 1
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["interrupted"] is True
    assert 0 < result["summary"]["records_sent"] < 6000  # stopped long before the planned minute
    assert any("merged from 2 workers" in note for note in result["notes"])
    assert "HTML report:" in out


def _children(pid: int) -> list[int]:
    """The worker processes ``pid`` started (multiprocessing's spawn), by /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"spawn_main" in command:
            found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers through /proc")
def test_workers_stop_when_their_parent_is_killed(moto_endpoint: str, tmp_path: Path) -> None:
    run = _start_workers_run(moto_endpoint, tmp_path)
    workers = _children(run.pid)
    try:
        assert len(workers) == 2
        run.kill()  # SIGKILL: the parent forwards nothing
        run.wait(timeout=10)
        deadline = time.monotonic() + 30  # a worker polls each second; the run would last 60 s
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if _running(pid)], "workers outlived their parent"
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
