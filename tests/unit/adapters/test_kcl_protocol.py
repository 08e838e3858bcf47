"""The KCL record processor driven over its real stdin/stdout JSON-lines protocol.

The Java MultiLangDaemon cannot run here, so :mod:`multilang_daemon` plays it, rules included
(checkpoint range checks, a status for every action, ``System.exit(1)`` when the child ends
without one).  It spawns ``python -m consumers.adapters.kcl`` exactly as ``executableName``
would.  The success paths are compared line by line with amazon-kclpy's own sample processor
on the same input (transcripts recorded from ``samples/sample_kclpy_app.py``, see
tests/fixtures/kcl/README.md).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.unit.adapters.multilang_daemon import DaemonExit, MultiLangDaemon, Record

pytest.importorskip("amazon_kclpy", reason="install with shardline-install-kclpy")

SHARD = "shardId-000000000001"
HERE = Path(__file__).parent
FIXTURES = HERE.parent.parent / "fixtures" / "kcl"
TRANSCRIPTS: dict[str, Any] = json.loads((FIXTURES / "sample_kclpy_app_transcripts.json").read_text())
WAIT = 60.0


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _records(*payloads: tuple[str, bytes]) -> list[Record]:
    return [Record(sequence, data, 0, f"device-{index}") for index, (sequence, data) in enumerate(payloads)]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    processes: list[subprocess.Popen[str]] = []

    def start(
        *extra: str,
        dead_letter: bool = True,
        interval: float = 0.0,
        sink: str | None = None,
        transform: str | None = "kcl_test_transforms:reject_bad",
        dead_letter_uri: str | None = None,
    ) -> MultiLangDaemon:
        args = [
            sys.executable,
            "-m",
            "consumers.adapters.kcl",
            "--sink",
            sink or f"file://{tmp_path}/out.jsonl",
            "--stream-name",
            "telemetry",
            "--checkpoint-interval",
            str(interval),
        ]
        if transform:
            args += ["--transform", transform]
        if dead_letter:
            args += ["--dead-letter", dead_letter_uri or f"file://{tmp_path}/dlq.jsonl"]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.getcwd()]))
        process = subprocess.Popen(
            [*args, *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        processes.append(process)
        return MultiLangDaemon(process, SHARD, timeout=WAIT)

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=WAIT)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None and not stream.closed:
                stream.close()


def test_records_written_checkpointed_and_shard_end(spawn: Any, tmp_path: Path) -> None:
    daemon = spawn()
    daemon.initialize()
    daemon.process_records(_records(("100", b"reading-1"), ("101", b"BAD-reading"), ("102", b"reading-3")))
    assert daemon.checkpoints == [("102", 0)]
    written = _lines(tmp_path / "out.jsonl")
    assert [base64.b64decode(line["data"]) for line in written] == [b"reading-1", b"reading-3"]
    assert written[0]["id"] == f"telemetry/{SHARD}/100/0"
    # UTC-aware, from approximateArrivalTimestamp 1545084650987 ms (not kclpy's naive local time)
    assert written[0]["arrival_time"] == datetime.fromtimestamp(1545084650.987, tz=UTC).isoformat()
    dead = _lines(tmp_path / "dlq.jsonl")
    assert len(dead) == 1
    assert "BAD" not in json.dumps({k: v for k, v in dead[0].items() if k != "record"})

    # a throttled checkpoint is retried; the processor waits for the daemon's answer each time
    daemon.injected_errors.append("ThrottlingException")
    daemon.process_records(_records(("103", b"reading-4")))
    assert daemon.transcript[-3:] == [
        {"action": "checkpoint", "sequenceNumber": "103", "subSequenceNumber": 0},
        {"action": "checkpoint", "sequenceNumber": "103", "subSequenceNumber": 0},
        {"action": "status", "responseFor": "processRecords"},
    ]
    assert daemon.checkpoints[-1] == ("103", 0)

    daemon.shard_ended()
    assert daemon.checkpoints[-1] == ("SHARD_END", 0)
    assert daemon.process.returncode == 0


def test_records_are_taken_as_delivered_and_checkpoints_name_their_sub_sequence(
    spawn: Any, tmp_path: Path
) -> None:
    """The daemon delivers a KPL aggregate de-aggregated already; a user record whose payload
    itself looks like an aggregate (the KPL magic) must not be expanded a second time, or the
    checkpoint would name a sub-sequence number the daemon never delivered."""
    from aws_kinesis_agg.aggregator import RecordAggregator

    aggregator = RecordAggregator()
    aggregator.add_user_record("inner-a", b"x")
    aggregator.add_user_record("inner-b", b"y")
    looks_aggregated = aggregator.clear_and_get().get_contents()[2]
    assert looks_aggregated[:4] == b"\xf3\x89\x9a\xc2"
    daemon = spawn(transform=None)
    daemon.initialize()
    daemon.process_records(
        [
            Record("500", b"part-0", 0, "k0"),
            Record("500", b"part-1", 1, "k1"),
            Record("500", looks_aggregated, 2, "k2"),
        ]
    )
    assert daemon.checkpoints == [("500", 2)]
    written = _lines(tmp_path / "out.jsonl")
    assert [line["id"] for line in written] == [f"telemetry/{SHARD}/500/{n}" for n in range(3)]
    assert base64.b64decode(written[2]["data"]) == looks_aggregated
    daemon.shard_ended()
    assert daemon.process.returncode == 0


def test_records_a_transform_drops_count_as_done_up_to_shard_end(spawn: Any, tmp_path: Path) -> None:
    daemon = spawn(transform="kcl_test_transforms:drop_marked", interval=3600.0)
    daemon.initialize()
    daemon.process_records(_records(("900", b"keep"), ("901", b"DROP-me")))
    daemon.shard_ended()
    assert daemon.checkpoints == [("SHARD_END", 0)]
    assert daemon.process.returncode == 0
    assert [base64.b64decode(line["data"]) for line in _lines(tmp_path / "out.jsonl")] == [b"keep"]


def test_lease_lost_never_checkpoints(spawn: Any, tmp_path: Path) -> None:
    daemon = spawn(interval=3600.0)
    daemon.initialize()
    daemon.process_records(_records(("200", b"a"), ("201", b"b")))
    daemon.lease_lost()
    assert daemon.checkpoints == []
    assert len(_lines(tmp_path / "out.jsonl")) == 2


def test_shutdown_requested_checkpoints_what_was_written(spawn: Any) -> None:
    daemon = spawn(interval=3600.0)
    daemon.initialize()
    daemon.process_records(_records(("300", b"a"), ("301", b"b")))
    daemon.shutdown_requested()
    assert daemon.checkpoints == [("301", 0)]


def test_shutdown_refused_by_daemon_is_not_fatal(spawn: Any) -> None:
    daemon = spawn(interval=3600.0)
    daemon.initialize()
    daemon.process_records(_records(("400", b"a")))
    daemon.injected_errors.append("ShutdownException")
    daemon.shutdown_requested()
    assert daemon.checkpoints == []
    assert daemon.transcript[-1] == {"action": "status", "responseFor": "shutdownRequested"}


def test_unwritable_records_checkpoint_the_written_part_and_stop_the_daemon(
    spawn: Any, tmp_path: Path
) -> None:
    """No dead letter: a poison record ends the process after checkpointing what was written;
    the daemon gets no status and exits (every shard of the worker stops)."""
    daemon = spawn(dead_letter=False, interval=3600.0)
    daemon.initialize()
    daemon.process_records(_records(("500", b"good")))
    with pytest.raises(DaemonExit, match="before the status"):
        daemon.process_records(_records(("501", b"BAD"), ("502", b"good-2")))
    assert daemon.checkpoints == [("500", 0)]  # only what the sink acknowledged
    assert not any(line.get("responseFor") == "processRecords" for line in daemon.transcript[2:])
    assert daemon.process.wait(timeout=WAIT) == 1
    assert [base64.b64decode(line["data"]) for line in _lines(tmp_path / "out.jsonl")] == [b"good"]


@pytest.mark.parametrize(
    "bad",
    [
        {"sink": "nosuchscheme://x"},
        {"dead_letter_uri": "ftp://dlq/x"},
        {"transform": "kcl_test_transforms:no_such_function"},
    ],
    ids=["sink", "dead-letter", "transform"],
)
def test_bad_configuration_never_answers_initialize(spawn: Any, bad: dict[str, str]) -> None:
    daemon = spawn(**bad)
    with pytest.raises(DaemonExit):
        daemon.initialize()
    assert daemon.transcript == []  # no status: the daemon stops instead of sending records
    assert daemon.process.wait(timeout=WAIT) != 0
    # the daemon logs the child's stderr: one line that says why, not a traceback
    stderr = daemon.process.stderr.read()
    assert '"error_type":"ConfigurationError"' in stderr
    assert "Traceback" not in stderr


def test_an_unexpected_exception_ends_the_process_instead_of_a_status(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A bug anywhere in the processor (here: the batch writer itself raises) must not reach
    kclpy's catch-all, which would print it and still answer ``status`` for the batch."""
    import io

    from amazon_kclpy import kcl

    from consumers.adapters import kcl as adapter
    from consumers.sinks.file import FileSink

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug, not a record's fault")

    monkeypatch.setattr(adapter, "process_batch", broken)
    exits: list[int] = []
    processor = adapter.ShardlineRecordProcessor(
        lambda: FileSink(tmp_path / "out.jsonl"), exit_process=exits.append
    )
    lines = [
        {"action": "initialize", "shardId": SHARD, "sequenceNumber": "TRIM_HORIZON", "subSequenceNumber": 0},
        {"action": "processRecords", "millisBehindLatest": 0, "records": [Record("700", b"x").message()]},
        {"action": "shardEnded"},
    ]
    stdin = io.StringIO("".join(json.dumps(line) + "\n" for line in lines))
    stdout = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        kcl.KCLProcess(processor, input_file=stdin, output_file=stdout, error_file=io.StringIO()).run()
    assert exited.value.code == 1 and exits == [1]
    answered = [json.loads(line) for line in stdout.getvalue().splitlines() if line.strip()]
    assert answered == [{"action": "status", "responseFor": "initialize"}]  # no status, no SHARD_END


@pytest.mark.parametrize("scenario", sorted(TRANSCRIPTS))
def test_protocol_lines_match_amazon_kclpy_sample_processor(spawn: Any, scenario: str) -> None:
    """Same daemon input as the recorded run of amazon-kclpy's sample_kclpy_app.py: the same
    lines come back (the sample checkpoints every 60 s, so does the adapter here), and where
    the sample checkpoints with no sequence number the adapter names the same position."""
    recorded = TRANSCRIPTS[scenario]
    daemon = spawn(interval=60.0, transform=None)
    for step in recorded["daemon"]:
        action = step["action"]
        if action == "initialize":
            daemon.initialize()
        elif action == "processRecords":
            daemon.process_records(
                [
                    Record(
                        r["sequenceNumber"],
                        base64.b64decode(r["data"]),
                        r["subSequenceNumber"],
                        r["partitionKey"],
                        r["approximateArrivalTimestamp"],
                    )
                    for r in step["records"]
                ]
            )
        elif action == "shardEnded":
            daemon.shard_ended()
        elif action == "leaseLost":
            daemon.lease_lost()
        else:
            daemon.shutdown_requested()
    sample = recorded["sample_kclpy_app"]
    assert [tuple(checkpoint) for checkpoint in sample["checkpoints"]] == daemon.checkpoints
    if scenario == "shutdown_requested":
        # the sample says checkpoint() (the largest delivered), the adapter names what it wrote
        expected = [dict(line) for line in sample["child"]]
        expected[2] = {
            "action": "checkpoint",
            "sequenceNumber": daemon.checkpoints[0][0],
            "subSequenceNumber": daemon.checkpoints[0][1],
        }
        assert daemon.transcript == expected
    else:
        assert daemon.transcript == sample["child"]
    if daemon.process.poll() is None:
        assert daemon.process.stdin is not None
        daemon.process.stdin.close()
    assert daemon.process.wait(timeout=WAIT) == sample["exit"]


def test_the_daemon_emulator_refuses_what_the_java_daemon_refuses(tmp_path: Path) -> None:
    """The emulator's rules can fail: a processor checkpointing past what was delivered, or
    backwards, is answered with IllegalArgumentException and nothing is recorded."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.getcwd()]))
    process = subprocess.Popen(
        [sys.executable, str(HERE / "kcl_rule_breaker.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        daemon = MultiLangDaemon(process, SHARD, timeout=WAIT)
        daemon.initialize()
        daemon.process_records([Record("700", b"a", 0), Record("700", b"b", 1), Record("701", b"c", 0)])
        answers = [line for line in daemon.transcript if line["action"] == "checkpoint"]
        assert [(a["sequenceNumber"], a["subSequenceNumber"]) for a in answers] == [
            ("701", 1),
            ("702", 0),
            ("701", 0),
            ("700", 0),
        ]
        assert daemon.checkpoints == [("701", 0)]  # only the one inside the range, not the step back
        daemon.shard_ended()
        assert daemon.checkpoints[-1] == ("SHARD_END", 0)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=WAIT)
        for stream in (process.stdin, process.stdout):
            if stream is not None and not stream.closed:
                stream.close()


def test_a_child_that_exits_or_answers_for_another_action_stops_the_daemon() -> None:
    quiet = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.readline()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    with pytest.raises(DaemonExit, match="before the status"):
        MultiLangDaemon(quiet, SHARD, timeout=WAIT).initialize()
    quiet.wait(timeout=WAIT)
    answer_for_x = (
        'import sys; sys.stdin.readline(); print(\'{"action": "status", "responseFor": "x"}\', flush=True)'
    )
    wrong = subprocess.Popen(
        [sys.executable, "-c", answer_for_x],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    with pytest.raises(DaemonExit, match="status for 'x'"):
        MultiLangDaemon(wrong, SHARD, timeout=WAIT).initialize()
    wrong.wait(timeout=WAIT)
    for process in (quiet, wrong):
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def test_shard_end_is_never_checkpointed_past_a_record_that_was_not_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The last guard: should a batch ever come back without a failure yet short of its last
    record, ``shardEnded`` ends the process instead of recording SHARD_END."""
    import io

    from amazon_kclpy import kcl

    from consumers.adapters import kcl as adapter
    from consumers.adapters._batch import BatchOutcome
    from consumers.pipeline import PipelineStats
    from consumers.sinks.file import FileSink
    from shardline.records import KinesisPosition

    async def short(records_by_partition: dict[str, Any], *args: Any, **kwargs: Any) -> BatchOutcome:
        [(shard, records)] = records_by_partition.items()
        return BatchOutcome({shard: records[0].position}, PipelineStats())

    monkeypatch.setattr(adapter, "process_batch", short)
    processor = adapter.ShardlineRecordProcessor(
        lambda: FileSink(tmp_path / "out.jsonl"), checkpoint_interval=3600
    )
    lines = [
        {"action": "initialize", "shardId": SHARD, "sequenceNumber": "TRIM_HORIZON", "subSequenceNumber": 0},
        {
            "action": "processRecords",
            "millisBehindLatest": 0,
            "records": [Record("800", b"x").message(), Record("801", b"y").message()],
        },
        {"action": "shardEnded"},
    ]
    stdout = io.StringIO()
    with pytest.raises(SystemExit):
        kcl.KCLProcess(
            processor,
            input_file=io.StringIO("".join(json.dumps(line) + "\n" for line in lines)),
            output_file=stdout,
            error_file=io.StringIO(),
        ).run()
    answered = [json.loads(line) for line in stdout.getvalue().splitlines() if line.strip()]
    assert answered == [
        {"action": "status", "responseFor": "initialize"},
        {"action": "status", "responseFor": "processRecords"},
    ]
    assert KinesisPosition("", SHARD, "800") == processor._acknowledged


@pytest.mark.parametrize(
    "error", ["ThrottlingException", "KinesisClientLibDependencyException", "InvalidStateException"]
)
def test_shard_end_the_daemon_did_not_record_ends_the_process_instead_of_a_status(
    spawn: Any, error: str
) -> None:
    """The KCL's ShutdownTask checks the lease after ``shardEnded``: without SHARD_END it fails
    and retries, but the MultiLangDaemon has already shut this child down, so every retry finds
    no processor to checkpoint and the shard (and its children) stay stuck on this worker.  A
    refused SHARD_END must end the process instead, so the lease moves and the shard is ended
    again by the next owner."""
    daemon = spawn(interval=3600.0)
    daemon.initialize()
    daemon.process_records(_records(("600", b"a")))
    retries = 5 if error in {"ThrottlingException", "KinesisClientLibDependencyException"} else 1
    daemon.injected_errors.extend([error] * retries)
    with pytest.raises(DaemonExit, match="before the status"):
        daemon.shard_ended()
    assert daemon.checkpoints == []
    assert [line["action"] for line in daemon.transcript[2:]] == ["checkpoint"] * retries
    assert daemon.process.wait(timeout=WAIT) == 1


def test_shard_end_refused_because_the_lease_moved_is_answered(spawn: Any) -> None:
    """ShutdownException: another worker holds the lease now and ends the shard itself; this
    worker answers instead of stopping every shard it processes."""
    daemon = spawn(interval=3600.0)
    daemon.initialize()
    daemon.process_records(_records(("610", b"a")))
    daemon.injected_errors.append("ShutdownException")
    daemon.shard_ended()
    assert daemon.checkpoints == []
    assert daemon.transcript[-1] == {"action": "status", "responseFor": "shardEnded"}
    assert daemon.process.returncode == 0


_SECRET_DATA = base64.b64encode(b"PAYLOAD-CANARY-5e1f").decode()
_SECRET_KEY = "KEY-CANARY-77ab"


@pytest.mark.parametrize(
    ("line", "error_type"),
    [
        ("not json at all", "JSONDecodeError"),
        (json.dumps({"action": "noSuchAction", "partitionKey": _SECRET_KEY}), "MalformedAction"),
        (
            json.dumps(
                {
                    "action": "processRecords",
                    "millisBehindLatest": 0,
                    # no "action": "record": kclpy's error quotes the record whole
                    "records": [
                        {
                            "data": _SECRET_DATA,
                            "partitionKey": _SECRET_KEY,
                            "sequenceNumber": "1",
                            "subSequenceNumber": 0,
                            "approximateArrivalTimestamp": 1545084650987,
                        }
                    ],
                }
            ),
            "MalformedAction",
        ),
        (json.dumps({"action": "processRecords", "records": []}), "KeyError"),
    ],
    ids=["not-json", "unknown-action", "record-without-action", "missing-field"],
)
def test_a_message_kclpy_cannot_read_ends_the_process_with_one_line_and_no_payload(
    tmp_path: Path, line: str, error_type: str
) -> None:
    """kclpy raises out of its loop for a line it cannot decode; the process must exit 1 with
    no status for it, and say so in one log line: not a traceback, whose message (kclpy's
    MalformedAction quotes the message whole) carries the record's payload and key."""
    initialize = {
        "action": "initialize",
        "shardId": SHARD,
        "sequenceNumber": "TRIM_HORIZON",
        "subSequenceNumber": 0,
    }
    done = subprocess.run(
        [sys.executable, "-m", "consumers.adapters.kcl", "--sink", f"file://{tmp_path}/out.jsonl"],
        input=json.dumps(initialize) + "\n" + line + "\n",
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 1
    answered = [json.loads(out) for out in done.stdout.splitlines() if out.strip()]
    assert answered == [{"action": "status", "responseFor": "initialize"}]
    assert f'"error_type":"{error_type}"' in done.stderr
    assert "Traceback" not in done.stderr
    for secret in (_SECRET_DATA, _SECRET_KEY, "PAYLOAD-CANARY"):
        assert secret not in done.stderr


def test_an_empty_process_records_call_checkpoints_the_tail_once_the_interval_passed() -> None:
    """With ``callProcessRecordsEvenForEmptyRecordList`` the daemon calls an idle shard with no
    records, as amazon-kclpy's sample expects, so the processor can checkpoint on time: the
    last batch written before the shard went idle must be checkpointed then, not read again
    by every next owner of the lease."""
    from types import SimpleNamespace

    from amazon_kclpy.messages import Record as KclRecord

    from consumers.adapters.kcl import ShardlineRecordProcessor
    from consumers.sinks.memory import MemorySink

    now = [0.0]
    processor = ShardlineRecordProcessor(
        MemorySink(), checkpoint_interval=60.0, clock=lambda: now[0], exit_process=lambda code: None
    )
    checkpoints: list[tuple[Any, Any]] = []
    checkpointer = SimpleNamespace(
        checkpoint=lambda sequence=None, sub=None: checkpoints.append((sequence, sub))
    )

    def call(*records: Record) -> None:
        processor.process_records(
            SimpleNamespace(
                records=[KclRecord(record.message()) for record in records],
                checkpointer=checkpointer,
                millis_behind_latest=0,
            )
        )

    try:
        processor.initialize(SimpleNamespace(shard_id=SHARD))
        now[0] = 10.0
        call(Record("800", b"a"), Record("801", b"b"))
        assert checkpoints == []  # inside the interval
        now[0] = 30.0
        call()
        assert checkpoints == []
        now[0] = 61.0
        call()
        assert checkpoints == [("801", 0)]
        now[0] = 200.0
        call()
        assert checkpoints == [("801", 0)]  # nothing new: not checkpointed again
    finally:
        processor.close()
