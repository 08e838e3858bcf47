"""A consumer process paused (SIGSTOP) past the lease expiry, over the wire (kinesis-mock, moto).

RELIABILITY row 9.  Two ``shardline consume`` processes share one DynamoDB lease table while
records flow into a 2-shard stream.  Worker A holds both shards; B, started beside it, takes
nothing while A renews.  A is stopped with SIGSTOP: its counters stand still, and once B has
seen them still for the expiry (three renewal intervals) B takes both shards.  A is continued
with SIGCONT: its next renewal or checkpoint carries the counter it last wrote, the table
refuses it (``LeaseLostError``), and A stops those shards without ever taking them back.

The oracle: B took each shard no sooner than the expiry after A's last write to its row (as
bounded by the test's own scans of the table), no shard's checkpoint or counter ever moves
backwards in the table, A never owns a shard again once B took it, every acknowledged record
is in a sink (A's or B's), A counts each of the two losses once, and A exits 0 on SIGTERM
holding nothing.  Both processes renew every 0.5 s (the test wrapper
``consume_with_fast_leases``), so the expiry is 1.5 s and the test takes some seconds.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration.consume_process import sink_lines, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RENEW_INTERVAL = 0.5
EXPIRY = 3 * RENEW_INTERVAL
BOUND = 30.0
SENTINELS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")


@dataclass(frozen=True, slots=True)
class LeaseRow:
    owner: str | None
    counter: int
    checkpoint: str


@dataclass
class Producer:
    """Puts small batches of uniquely identified records until stopped; keeps the acknowledged ids."""

    client: Any
    stream: str
    acknowledged: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    failure: list[BaseException] = field(default_factory=list)

    def run(self) -> None:
        number = 0
        try:
            while not self.stop.is_set():
                ids = [f"r{number + offset}" for offset in range(5)]
                number += len(ids)
                entries = [
                    {"Data": json.dumps({"id": record_id}).encode(), "PartitionKey": f"device-{record_id}"}
                    for record_id in ids
                ]
                response = self.client.put_records(StreamName=self.stream, Records=entries)
                self.acknowledged.extend(
                    record_id
                    for record_id, result in zip(ids, response["Records"], strict=True)
                    if "SequenceNumber" in result
                )
                self.stop.wait(0.1)  # pacing: a steady trickle, not a sync point
        except BaseException as exc:
            self.failure.append(exc)


@dataclass
class LeaseWatch:
    """Reads the lease table every 0.1 s and keeps each shard's successive rows.

    ``sightings`` bounds when each row was written, on this machine's monotonic clock (the one
    the workers time the expiry on): after the start of the scan before the one that first
    showed it (that scan still read the row it replaced), and before the end of that one.
    """

    client: Any
    table: str
    history: dict[str, list[LeaseRow]] = field(default_factory=dict)
    sightings: dict[tuple[str, LeaseRow], tuple[float, float]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    failure: list[BaseException] = field(default_factory=list)

    def rows(self) -> dict[str, LeaseRow]:
        items = self.client.scan(TableName=self.table, ConsistentRead=True)["Items"]
        return {
            item["leaseKey"]["S"]: LeaseRow(
                item.get("leaseOwner", {}).get("S"), int(item["leaseCounter"]["N"]), item["checkpoint"]["S"]
            )
            for item in items
        }

    def run(self) -> None:
        previous_start = float("-inf")
        try:
            while not self.stop.is_set():
                start = time.monotonic()
                listed = self.rows()
                end = time.monotonic()
                for shard, row in listed.items():
                    rows = self.history.setdefault(shard, [])
                    if not rows or rows[-1] != row:
                        self.sightings[(shard, row)] = (previous_start, end)
                        rows.append(row)
                previous_start = start
                self.stop.wait(0.1)  # sampling period of the table
        except BaseException as exc:
            self.failure.append(exc)


def _checkpoint_order(checkpoint: str) -> float:
    """Where a checkpoint stands on its shard: sentinels first, SHARD_END last."""
    if checkpoint in SENTINELS:
        return -1.0
    if checkpoint == "SHARD_END":
        return float("inf")
    return float(int(checkpoint))


def _spawn(
    stream: str, table: str, owner: str, tmp_path: Path, kinesis_endpoint: str, moto_endpoint: str
) -> subprocess.Popen[bytes]:
    environment = dict(os.environ)
    environment.update(
        AWS_ENDPOINT_URL_KINESIS=kinesis_endpoint,
        AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint,
        AWS_DEFAULT_REGION="us-east-1",
    )
    with (tmp_path / f"{owner}.log").open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.consume_with_fast_leases",
                str(RENEW_INTERVAL),
                "consume",
                f"kinesis://{stream}",
                "--checkpoint",
                f"dynamodb://{table}?create_table=true",
                "--sink",
                f"file://{tmp_path / owner}.jsonl",
                "--checkpoint-interval",
                "0.2",
                "--owner",
                owner,
            ],
            env=environment,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def _logs(tmp_path: Path, owner: str) -> list[dict[str, Any]]:
    text = (tmp_path / f"{owner}.log").read_text(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _ids(tmp_path: Path, owner: str) -> set[str]:
    return {
        json.loads(base64.b64decode(line["data"]))["id"] for line in sink_lines(tmp_path / f"{owner}.jsonl")
    }


def _terminate(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)  # a stopped process would never see the SIGTERM
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=BOUND)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout=BOUND)


@pytest.fixture
def stream(kinesis_endpoint: str) -> Iterator[tuple[Any, str]]:
    client: Any = boto3.client("kinesis", endpoint_url=kinesis_endpoint, region_name="us-east-1")
    name = f"paused-{uuid.uuid4().hex[:10]}"
    client.create_stream(StreamName=name, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    yield client, name
    client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


def test_a_worker_paused_past_the_expiry_is_fenced_out_and_loses_nothing(
    stream: tuple[Any, str], kinesis_endpoint: str, moto_endpoint: str, tmp_path: Path
) -> None:
    client, name = stream
    table = f"leases-paused-{uuid.uuid4().hex[:8]}"
    producer = Producer(client, name)
    watch = LeaseWatch(boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1"), table)
    threads = [threading.Thread(target=producer.run), threading.Thread(target=watch.run)]
    threads[0].start()
    worker_a = _spawn(name, table, "worker-a", tmp_path, kinesis_endpoint, moto_endpoint)
    worker_b: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: bool(_ids(tmp_path, "worker-a")), "A reads", BOUND)
        threads[1].start()
        wait_until(lambda: len(watch.history) == 2, "both leases in the table", BOUND)
        assert {rows[-1].owner for rows in watch.history.values()} == {"worker-a"}

        worker_b = _spawn(name, table, "worker-b", tmp_path, kinesis_endpoint, moto_endpoint)
        wait_until(
            lambda: any(entry["message"] == "consumer starting" for entry in _logs(tmp_path, "worker-b")),
            "B starts",
            BOUND,
        )
        time.sleep(2 * EXPIRY)  # a span the assertion is about: B takes nothing A keeps renewing
        assert {owner for owner, _ in _owners(watch)} == {"worker-a"}

        worker_a.send_signal(signal.SIGSTOP)
        wait_until(lambda: _owners(watch) == {("worker-b", 2)}, "B takes both shards of the paused A", BOUND)
        # B's take is its first row of each shard (it may have renewed or checkpointed since)
        taken = {shard: _first_of("worker-b", rows) for shard, rows in watch.history.items()}
        for shard, rows in watch.history.items():
            # B waited for A's counter to stand still for the expiry, timed from A's last write
            # (a renewal or a checkpoint up to an interval before the pause), not from the pause
            last_of_a = rows[rows.index(taken[shard]) - 1]
            assert last_of_a.owner == "worker-a", (shard, rows)
            written_after = watch.sightings[(shard, last_of_a)][0]
            taken_before = watch.sightings[(shard, taken[shard])][1]
            assert taken_before - written_after >= EXPIRY, (shard, rows, written_after, taken_before)
        worker_a.send_signal(signal.SIGCONT)

        def fenced() -> bool:
            """A learnt of the loss of both shards (a renewal or a checkpoint refused)."""
            lost = {
                str(entry["message"]).rsplit("/", 1)[-1].split(";")[0]
                for entry in _logs(tmp_path, "worker-a")
                if str(entry["message"]).startswith("lease lost on")
            }
            return lost == set(taken)

        wait_until(lambda: fenced() or worker_a.poll() is not None, "A's writes refused or A ended", BOUND)
        assert worker_a.poll() is None, _logs(tmp_path, "worker-a")[-6:]
        wait_until(fenced, "A's renewal or checkpoint is refused on both shards", BOUND)
        # records keep flowing and only B reads them
        after_fencing = len(producer.acknowledged) + 10
        wait_until(lambda: len(producer.acknowledged) >= after_fencing, "more records produced", BOUND)
        producer.stop.set()
        threads[0].join(BOUND)
        acknowledged = set(producer.acknowledged)
        wait_until(
            lambda: acknowledged <= _ids(tmp_path, "worker-a") | _ids(tmp_path, "worker-b"),
            "every acknowledged record in a sink",
            BOUND,
        )
        assert _owners(watch) == {("worker-b", 2)}  # B keeps the shards
        assert _terminate(worker_a) == 0
        assert _owners(watch) == {("worker-b", 2)}  # A had nothing left to release
    finally:
        producer.stop.set()
        statuses = [_terminate(worker) for worker in (worker_a, worker_b) if worker is not None]
        watch.stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join(BOUND)
    assert not producer.failure and not watch.failure, (producer.failure, watch.failure)
    assert statuses[-1] == 0, _logs(tmp_path, "worker-b")

    late = set(producer.acknowledged[-10:])
    assert late <= _ids(tmp_path, "worker-b") and not late & _ids(tmp_path, "worker-a")
    for shard, rows in watch.history.items():
        # no checkpoint and no counter ever moved backwards, A's stale writes included
        orders = [_checkpoint_order(row.checkpoint) for row in rows]
        assert orders == sorted(orders), (shard, rows)
        assert [row.counter for row in rows] == sorted(row.counter for row in rows), (shard, rows)
        # once B took the shard, A never owned it again
        after_take = rows[rows.index(taken[shard]) :]
        assert "worker-a" not in {row.owner for row in after_take}, (shard, rows)
    (stopped,) = [entry for entry in _logs(tmp_path, "worker-a") if entry["message"] == "consumer stopped"]
    assert stopped["exit_status"] == 0
    assert stopped["partitions_lost"] == 2  # each loss counted once, however A learnt of it


def _first_of(owner: str, rows: list[LeaseRow]) -> LeaseRow:
    return next(row for row in rows if row.owner == owner)


def _owners(watch: LeaseWatch) -> set[tuple[str | None, int]]:
    """The owners of the latest rows, each with how many shards it holds."""
    latest = [rows[-1].owner for rows in watch.history.values()]
    return {(owner, latest.count(owner)) for owner in set(latest)}
