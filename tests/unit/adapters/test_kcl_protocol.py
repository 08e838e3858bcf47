"""The KCL record processor driven over its real stdin/stdout JSON-lines protocol.

The Java MultiLangDaemon cannot run here, so the test plays the daemon: it spawns
``python -m consumers.adapters.kcl`` exactly as ``executableName`` would, sends the
daemon's messages and answers the processor's checkpoint requests.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("amazon_kclpy", reason="install with shardline-install-kclpy")

SHARD = "shardId-000000000001"
HERE = Path(__file__).parent


class FakeDaemon:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"processor exited ({self.process.wait()}) instead of answering")
            line = line.strip()
            if line:
                message: dict[str, Any] = json.loads(line)
                return message

    def expect_status(self, response_for: str) -> None:
        assert self.receive() == {"action": "status", "responseFor": response_for}

    def expect_checkpoint(
        self, sequence: str | None, sub_sequence: int | None = 0, error: str | None = None
    ) -> None:
        assert self.receive() == {
            "action": "checkpoint",
            "sequenceNumber": sequence,
            "subSequenceNumber": sub_sequence,
        }
        self.send(
            {
                "action": "checkpoint",
                "sequenceNumber": sequence,
                "subSequenceNumber": sub_sequence,
                "error": error,
            }
        )

    def initialize(self) -> None:
        self.send(
            {
                "action": "initialize",
                "shardId": SHARD,
                "sequenceNumber": "TRIM_HORIZON",
                "subSequenceNumber": 0,
            }
        )
        self.expect_status("initialize")

    def process_records(self, *payloads: tuple[str, bytes]) -> None:
        self.send(
            {
                "action": "processRecords",
                "millisBehindLatest": 1200,
                "records": [
                    {
                        "action": "record",
                        "data": base64.b64encode(data).decode("ascii"),
                        "partitionKey": f"device-{index}",
                        "sequenceNumber": sequence,
                        "subSequenceNumber": 0,
                        "approximateArrivalTimestamp": 1545084650987,
                    }
                    for index, (sequence, data) in enumerate(payloads)
                ],
            }
        )


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    processes: list[subprocess.Popen[str]] = []

    def start(*extra: str, dead_letter: bool = True, interval: float = 0.0) -> FakeDaemon:
        args = [
            sys.executable, "-m", "consumers.adapters.kcl",
            "--sink", f"file://{tmp_path}/out.jsonl",
            "--stream-name", "telemetry",
            "--checkpoint-interval", str(interval),
            "--transform", "kcl_test_transforms:reject_bad",
        ]
        if dead_letter:
            args += ["--dead-letter", f"file://{tmp_path}/dlq.jsonl"]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.getcwd()]))
        process = subprocess.Popen(
            [*args, *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env,
        )
        processes.append(process)
        return FakeDaemon(process)

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_records_written_checkpointed_and_shard_end(spawn: Any, tmp_path: Path) -> None:
    daemon = spawn()
    daemon.initialize()
    daemon.process_records(("100", b"reading-1"), ("101", b"BAD-reading"), ("102", b"reading-3"))
    daemon.expect_checkpoint("102")
    daemon.expect_status("processRecords")
    written = _lines(tmp_path / "out.jsonl")
    assert [base64.b64decode(line["data"]) for line in written] == [b"reading-1", b"reading-3"]
    assert written[0]["id"] == f"telemetry/{SHARD}/100/0"
    dead = _lines(tmp_path / "dlq.jsonl")
    assert len(dead) == 1
    assert "BAD" not in json.dumps({k: v for k, v in dead[0].items() if k != "record"})

    # a throttled checkpoint is retried; the processor waits for the daemon's answer each time
    daemon.process_records(("103", b"reading-4"))
    daemon.expect_checkpoint("103", error="ThrottlingException")
    daemon.expect_checkpoint("103")
    daemon.expect_status("processRecords")

    daemon.send({"action": "shardEnded"})
    daemon.expect_checkpoint(None, None)  # SHARD_END
    daemon.expect_status("shardEnded")
    assert daemon.process.stdin is not None
    daemon.process.stdin.close()
    assert daemon.process.wait(timeout=60) == 0


def test_lease_lost_never_checkpoints(spawn: Any, tmp_path: Path) -> None:
    daemon = spawn(interval=3600.0)
    daemon.initialize()
    daemon.process_records(("200", b"a"), ("201", b"b"))
    daemon.expect_status("processRecords")  # interval not reached: no checkpoint yet
    daemon.send({"action": "leaseLost"})
    daemon.expect_status("leaseLost")  # and still none after the lease is gone
    assert len(_lines(tmp_path / "out.jsonl")) == 2


def test_shutdown_requested_checkpoints_what_was_acknowledged(spawn: Any) -> None:
    daemon = spawn(interval=3600.0)
    daemon.initialize()
    daemon.process_records(("300", b"a"), ("301", b"b"))
    daemon.expect_status("processRecords")
    daemon.send({"action": "shutdownRequested"})
    daemon.expect_checkpoint("301")
    daemon.expect_status("shutdownRequested")


def test_shutdown_refused_by_daemon_is_not_fatal(spawn: Any) -> None:
    daemon = spawn(interval=3600.0)
    daemon.initialize()
    daemon.process_records(("400", b"a"))
    daemon.expect_status("processRecords")
    daemon.send({"action": "shutdownRequested"})
    daemon.expect_checkpoint("400", error="ShutdownException")
    daemon.expect_status("shutdownRequested")


def test_unwritable_records_checkpoint_the_acknowledged_part_and_exit(spawn: Any, tmp_path: Path) -> None:
    daemon = spawn(dead_letter=False, interval=3600.0)
    daemon.initialize()
    daemon.process_records(("500", b"good"))
    daemon.expect_status("processRecords")
    daemon.process_records(("501", b"BAD"), ("502", b"good-2"))
    daemon.expect_checkpoint("500")  # only what the sink acknowledged
    assert daemon.process.wait(timeout=60) == 1  # the daemon restarts the shard from 500
