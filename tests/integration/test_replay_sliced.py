"""A planned replay over several processes, one killed mid-slice, against moto and kinesis-mock.

The property: planning a range into slices, running them as separate processes, killing one
with SIGKILL in the middle of its slice and running that slice again from another process
leaves the sink in exactly the state one uninterrupted single-process replay of the same
range leaves it in; only the poison records are dead-lettered; ``status`` says done.

The archive test writes ``SHARDLINE_SLICED_BACKFILL_RECORDS`` records (default 2,000 so the
suite stays fast; the 200,000-record run is the same test with the variable set, see
docs/replay.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consumers.replay.kinesis_range import KinesisRange, KinesisRangeReader
from consumers.replay.manifest import RateCaps, manifest_from_json, manifest_to_json
from consumers.replay.ranges import S3ArchiveReader
from consumers.sinks.firehose import encode_line
from shardline.records import ConsumedRecord, KinesisPosition
from tests.integration.sliced_replay import (
    client,
    dead_lettered_sequences,
    environment,
    make_table,
    manifest_slices,
    scan,
    shardline,
    single_process_replay,
    start_shardline,
    table_hash,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = int(os.environ.get("SHARDLINE_SLICED_BACKFILL_RECORDS", "2000"))
POISON = {77, RECORDS // 2 + 3, RECORDS - 5}
# The job's write cap keeps each slice busy long enough to be caught mid-way at any size.
WRITE_CAP = str(max(800, RECORDS // 25))
# Bounds that grow with the size (the suite's default size stays within the global 300 s).
RUN_TIMEOUT = max(300, RECORDS // 100)


def _archive(s3: Any, bucket: str, records: int, poison: set[int] = POISON) -> None:
    """Firehose-layout objects of uneven sizes (so slicing by bytes matters), a few poison lines."""
    s3.create_bucket(Bucket=bucket)
    objects = 24 if records <= 20_000 else 64
    sizes = [records * 2 // (5 * objects) * (2 + index % 2) for index in range(objects)]
    sizes[-1] += records - sum(sizes)
    sequence = 0
    for index, size in enumerate(sizes):
        lines = []
        for _ in range(size):
            sequence += 1
            payload = (
                b"\x00 not json"
                if sequence in poison
                else json.dumps(
                    {"device": f"d{sequence % 997}", "temp": sequence % 50, "n": sequence}
                ).encode()
            )
            position = KinesisPosition("telemetry", f"shardId-{sequence % 4:012d}", str(sequence))
            lines.append(encode_line(ConsumedRecord(payload, f"d{sequence % 997}", position)))
        s3.put_object(Bucket=bucket, Key=f"2024/05/{index:02d}/part-{index:04d}", Body=b"".join(lines))


def _ledger(dynamodb: Any, table: str) -> dict[str, dict[str, Any]]:
    return {item["leaseKey"]["S"]: item for item in scan(dynamodb, table)}


@pytest.mark.timeout(RUN_TIMEOUT * 2)
def test_archive_backfill_in_slices_survives_a_killed_worker(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suffix = uuid.uuid4().hex[:8]
    s3, dynamodb = client("s3", moto_endpoint), client("dynamodb", moto_endpoint)
    archive, dlq, reference_dlq = f"archive-{suffix}", f"dlq-{suffix}", f"dlq-ref-{suffix}"
    _archive(s3, archive, RECORDS)
    s3.create_bucket(Bucket=dlq)
    s3.create_bucket(Bucket=reference_dlq)
    sliced, reference = make_table(dynamodb, f"sliced-{suffix}"), make_table(dynamodb, f"reference-{suffix}")
    env = environment(s3=moto_endpoint, dynamodb=moto_endpoint)
    manifest = tmp_path / "manifest.json"
    name = f"backfill-{suffix}"
    leases = f"leases-{suffix}-replay-{name}"

    planned = shardline(
        [
            "replay", "plan", f"s3://{archive}/2024/", "--slices", "8", "--out", str(manifest),
            "--name", name, "--sink", f"dynamodb://{sliced}",
            "--checkpoint", f"dynamodb://leases-{suffix}?create_table=true",
            "--dead-letter", f"s3://{dlq}/{name}", "--lease-seconds", "3",
            "--max-write-records-per-second", WRITE_CAP,
        ],
        env,
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    slices = manifest_slices(manifest)
    assert len(slices) == 8
    weights = [sum(unit["weight"] for unit in piece["units"]) for piece in slices]
    assert max(weights) <= 2 * min(weights)  # about equal bytes per slice

    supervisor = start_shardline(["replay", "run", "--manifest", str(manifest), "--workers", "4"], env)
    try:
        # A slice whose runner has started writing (it holds a unit lease) but not finished.
        def victim() -> tuple[int, int] | None:
            items = _ledger(dynamodb, leases) if leases in dynamodb.list_tables()["TableNames"] else {}
            for key, item in items.items():
                runner = item.get("runner", {}).get("S")
                if not key.startswith("slice-") or runner is None:
                    continue
                index = int(key.removeprefix("slice-"))
                units = [unit["name"] for unit in slices[index]["units"]]
                owned = [u for u in units if items.get(u, {}).get("leaseOwner", {}).get("S") == runner]
                ended = [u for u in units if items.get(u, {}).get("checkpoint", {}).get("S") == "SHARD_END"]
                if owned and len(ended) < len(units) - 1:
                    return index, int(runner.split(":")[1])
            return None

        killed_slice, pid = wait_for(victim, timeout=120, what="a slice in progress")
        os.kill(pid, signal.SIGKILL)
        out, err = supervisor.communicate(timeout=RUN_TIMEOUT)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(timeout=30)
    assert supervisor.returncode == 1, out + err
    assert f"slice {killed_slice} (pid {pid}) killed by SIGKILL" in err
    assert "failed: 1" in out

    # The dead runner's claim is left to expire; until then status says running (its lease
    # looks live), afterwards it shows the slice as stalled and the job as failed.
    def claim_expired() -> bool:
        row = _ledger(dynamodb, leases)[f"slice-{killed_slice:04d}"]
        return float(row["expires"]["N"]) < time.time()

    wait_for(claim_expired, timeout=30, what="the killed runner's lease to expire")
    stalled = shardline(["replay", "status", "--manifest", str(manifest)], env)
    assert stalled.returncode == 4, stalled.stdout + stalled.stderr
    rows = [line.split() for line in stalled.stdout.splitlines()]
    assert [str(killed_slice), "stalled"] in [row[:2] for row in rows], stalled.stdout

    rerun = shardline(
        ["replay", "run", "--manifest", str(manifest), "--slice", str(killed_slice)], env, timeout=RUN_TIMEOUT
    )
    assert rerun.returncode == 0, rerun.stderr

    status = shardline(["replay", "status", "--manifest", str(manifest)], env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.splitlines()[0].endswith(
        f"done (manifest {json.loads(manifest.read_text())['hash'][:12]})"
    )

    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    single_process_replay(
        lambda s3_client: S3ArchiveReader(s3_client, archive, "2024/"),
        f"dynamodb://{reference}",
        f"s3://{reference_dlq}/{name}",
        service="s3",
        endpoint=moto_endpoint,
    )
    assert table_hash(dynamodb, sliced) == table_hash(dynamodb, reference)
    assert table_hash(dynamodb, sliced)[1] == RECORDS - len(POISON)
    # Only the poison records, each at least once (a record dead-lettered before the kill is
    # dead-lettered again by the rerun: at-least-once, to the same key).
    assert set(dead_lettered_sequences(s3, dlq)) == {str(n) for n in POISON}


def _slow_manifest(
    moto_endpoint: str,
    tmp_path: Path,
    env: dict[str, str],
    *,
    name: str,
    read_cap: str = "2",
    lease_seconds: str = "30",
) -> Path:
    suffix = uuid.uuid4().hex[:8]
    s3, dynamodb = client("s3", moto_endpoint), client("dynamodb", moto_endpoint)
    archive = f"archive-{suffix}"
    _archive(s3, archive, 400, poison=set())
    table = make_table(dynamodb, f"sink-{suffix}")
    manifest = tmp_path / f"{name}.json"
    planned = shardline(
        [
            "replay", "plan", f"s3://{archive}/2024/", "--slices", "2", "--out", str(manifest),
            "--name", name, "--sink", f"dynamodb://{table}",
            "--checkpoint", f"dynamodb://leases-{suffix}?create_table=true",
            "--max-read-records-per-second", read_cap, "--lease-seconds", lease_seconds,
        ],
        env,
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    return manifest


def test_a_slice_held_by_a_live_runner_is_refused(moto_endpoint: str, tmp_path: Path) -> None:
    env = environment(s3=moto_endpoint, dynamodb=moto_endpoint)
    manifest = _slow_manifest(moto_endpoint, tmp_path, env, name=f"held-{uuid.uuid4().hex[:6]}")
    first = start_shardline(["replay", "run", "--manifest", str(manifest), "--slice", "0"], env)
    try:

        def held() -> bool:
            status = shardline(["replay", "status", "--manifest", str(manifest)], env)
            assert first.poll() is None, first.communicate()
            assert status.returncode in (3, 5), status.stdout + status.stderr
            return status.returncode == 3

        wait_for(held, timeout=60, what="the first runner to hold slice 0")
        second = shardline(["replay", "run", "--manifest", str(manifest), "--slice", "0"], env)
        assert second.returncode == 3, second.stderr
        assert "slice 0 is held by the live runner" in second.stderr
        assert first.poll() is None  # the first runner was not disturbed
    finally:
        first.terminate()
        first.wait(timeout=30)


def test_status_counts_what_a_running_slice_wrote(moto_endpoint: str, tmp_path: Path) -> None:
    """The written count of a running slice grows in ``status`` while it runs (it stayed 0 until
    the slice ended: the pipeline's write counters were synced only when its run returned)."""
    env = environment(s3=moto_endpoint, dynamodb=moto_endpoint)
    name = f"live-{uuid.uuid4().hex[:6]}"
    # about 200 records at 20 a second, heartbeats every second: ten seconds to be seen running
    manifest = _slow_manifest(moto_endpoint, tmp_path, env, name=name, read_cap="20", lease_seconds="3")
    runner = start_shardline(["replay", "run", "--manifest", str(manifest), "--slice", "0"], env)
    try:

        def written_while_running() -> int:
            status = shardline(["replay", "status", "--manifest", str(manifest)], env)
            assert runner.poll() is None, runner.communicate()
            row = next(line.split() for line in status.stdout.splitlines() if line.split()[:1] == ["0"])
            return int(row[4]) if row[1] == "running" else 0  # slice state units read WRITTEN ...

        assert wait_for(written_while_running, timeout=60, what="a running slice's written count") > 0
    finally:
        runner.terminate()
        runner.wait(timeout=30)


def test_a_manifest_of_another_plan_is_refused(moto_endpoint: str, tmp_path: Path) -> None:
    env = environment(s3=moto_endpoint, dynamodb=moto_endpoint)
    name = f"mismatch-{uuid.uuid4().hex[:6]}"
    manifest = _slow_manifest(moto_endpoint, tmp_path, env, name=name)
    # Another plan of the same job name (other settings, so another hash) runs first and
    # binds the job's checkpoint namespace to itself.
    original = manifest_from_json(manifest.read_text())
    replanned = tmp_path / "replanned.json"
    replanned.write_text(manifest_to_json(dataclasses.replace(original, caps=RateCaps(), lease_seconds=10.0)))
    ran = shardline(["replay", "run", "--manifest", str(replanned), "--slice", "1"], env)
    assert ran.returncode == 0, ran.stderr

    refused = shardline(["replay", "run", "--manifest", str(manifest), "--slice", "0"], env)
    assert refused.returncode == 2, refused.stderr
    assert "ManifestMismatchError" in refused.stderr
    assert "belongs to the plan with manifest hash" in refused.stderr

    # An edited manifest (its hash no longer matches its content) is refused before any I/O.
    document = json.loads(manifest.read_text())
    document["sink"] = "dynamodb://somewhere-else"
    manifest.write_text(json.dumps(document))
    edited = shardline(["replay", "run", "--manifest", str(manifest), "--slice", "0"], env)
    assert edited.returncode == 2
    assert "changed after it was planned" in edited.stderr


def _arrival_times(kinesis: Any, stream: str, records: int) -> list[datetime]:
    """Every record's ApproximateArrivalTimestamp, read back from each shard's start."""
    stamps: list[datetime] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for _ in range(50):  # bounded: a few pages hold them all
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            stamps += [record["ApproximateArrivalTimestamp"] for record in page["Records"]]
            iterator = page.get("NextShardIterator")
            if not page["Records"] or not iterator:
                break
    assert len(stamps) == records, f"read back {len(stamps)} of {records} records"
    return stamps


def test_kinesis_range_in_time_slices_matches_one_process(
    kinesis_endpoint: str, moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suffix = uuid.uuid4().hex[:8]
    kinesis, dynamodb, s3 = (
        client(s, e)
        for s, e in (("kinesis", kinesis_endpoint), ("dynamodb", moto_endpoint), ("s3", moto_endpoint))
    )
    stream = f"sliced-{suffix}"
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    wait_for(
        lambda: (
            kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
            == "ACTIVE"
        ),
        timeout=30,
        what="the stream",
    )
    sent = 0
    for burst in range(4):
        entries = [
            {
                "Data": json.dumps({"device": f"d{n % 37}", "n": n}).encode(),
                "PartitionKey": f"d{n % 37}",
            }
            for n in range(sent, sent + 150)
        ]
        response = kinesis.put_records(StreamName=stream, Records=entries)
        assert response["FailedRecordCount"] == 0
        sent += len(entries)
        assert burst >= 0
    # The range in the service's own time: AT_TIMESTAMP compares with its arrival stamps and
    # its clock, which can run behind this machine's (the planner and the readers allow for
    # that, but a range cut from this clock could then miss records stamped a moment before it)
    arrivals = _arrival_times(kinesis, stream, sent)
    start, end = min(arrivals) - timedelta(seconds=1), max(arrivals) + timedelta(seconds=1)
    sliced, reference = make_table(dynamodb, f"ksliced-{suffix}"), make_table(dynamodb, f"kref-{suffix}")
    dlq = f"kdlq-{suffix}"
    s3.create_bucket(Bucket=dlq)
    env = environment(kinesis=kinesis_endpoint, dynamodb=moto_endpoint, s3=moto_endpoint)
    manifest = tmp_path / "kinesis.json"
    name = f"kreplay-{suffix}"
    planned = shardline(
        [
            "replay", "plan", f"kinesis://{stream}", "--from", start.isoformat(), "--to", end.isoformat(),
            "--slices", "4", "--out", str(manifest), "--name", name, "--sink", f"dynamodb://{sliced}",
            "--checkpoint", f"dynamodb://kleases-{suffix}?create_table=true",
            "--dead-letter", f"s3://{dlq}/{name}", "--max-calls-per-second", "5",
        ],
        env,
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    units = [unit for piece in manifest_slices(manifest) for unit in piece["units"]]
    assert len(units) == 4
    assert {unit["shard"] for unit in units} == {"shardId-000000000000", "shardId-000000000001"}
    assert any("start_sequence" in unit for unit in units)  # the window's first record was found

    ran = shardline(["replay", "run", "--manifest", str(manifest), "--workers", "2"], env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    status = shardline(["replay", "status", "--manifest", str(manifest)], env)
    assert status.returncode == 0, status.stdout

    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    single_process_replay(
        lambda kinesis_client: KinesisRangeReader(
            kinesis_client, stream, KinesisRange(start_time=start, end_time=end), calls_per_second=5
        ),
        f"dynamodb://{reference}",
        f"s3://{dlq}/reference",
        service="kinesis",
        endpoint=kinesis_endpoint,
    )
    assert table_hash(dynamodb, sliced) == table_hash(dynamodb, reference)
    assert table_hash(dynamodb, sliced)[1] == sent
    assert dead_lettered_sequences(s3, dlq) == []
