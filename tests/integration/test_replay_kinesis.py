"""Replaying Kinesis ranges from kinesis-mock into a sink: by time, by sequence, resumably, capped.

Records are written with plain boto3 and read back with plain boto3 to know their sequence
numbers and arrival times; the expected range is computed from those, never from the clock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiobotocore.session import get_session

from consumers.checkpoint.sqlite import SQLiteCheckpointStore
from consumers.kinesis.config import ReaderConfig
from consumers.replay.job import ReplayJob
from consumers.replay.kinesis_range import KinesisRange, KinesisRangeReader
from consumers.sinks.file import FileSink
from shardline.errors import SinkError
from shardline.records import SHARD_END, ConsumedRecord

pytestmark = pytest.mark.integration


class Written:
    """What a stream holds, as read back with plain boto3: per shard, (sequence, arrival, data)."""

    def __init__(self, shards: dict[str, list[tuple[str, datetime, bytes]]]) -> None:
        self.shards = shards

    def all(self) -> list[tuple[str, datetime, bytes]]:
        return [entry for entries in self.shards.values() for entry in entries]


def create_stream(client: Any, shards: int) -> str:
    name = f"replay-{uuid.uuid4().hex[:12]}"
    client.create_stream(StreamName=name, ShardCount=shards)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 150})
    return name


def write_until_distinct_times(client: Any, stream: str, *, per_call: int, distinct: int) -> Written:
    """Write small PutRecords calls until the records span ``distinct`` arrival times (bounded)."""
    sent = 0
    for _ in range(60):
        entries = [
            {"Data": json.dumps({"n": n}).encode(), "PartitionKey": f"k{n}"}
            for n in range(sent, sent + per_call)
        ]
        response = client.put_records(StreamName=stream, Records=entries)
        assert response["FailedRecordCount"] == 0
        sent += per_call
        written = read_back(client, stream)
        if sent >= 30 and len({arrival for _, arrival, _ in written.all()}) >= distinct:
            return written
    raise AssertionError("kinesis-mock gave every record the same arrival time")


def read_back(client: Any, stream: str) -> Written:
    shards: dict[str, list[tuple[str, datetime, bytes]]] = {}
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        shard_id = shard["ShardId"]
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        entries: list[tuple[str, datetime, bytes]] = []
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=10_000)
            for r in response["Records"]:
                entries.append((r["SequenceNumber"], r["ApproximateArrivalTimestamp"], r["Data"]))
            if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
                break
            iterator = response.get("NextShardIterator")
        shards[shard_id] = entries
    return Written(shards)


@pytest.fixture
def kinesis(kinesis_endpoint: str) -> Iterator[Any]:
    client = boto3.client("kinesis", endpoint_url=kinesis_endpoint)
    yield client
    client.close()


@pytest.fixture
async def aio_kinesis(kinesis_endpoint: str) -> AsyncIterator[Any]:
    async with get_session().create_client("kinesis", endpoint_url=kinesis_endpoint) as client:
        yield client


def file_state(path: Path) -> tuple[str, list[bytes]]:
    """The sink file's hash and the payloads it holds."""
    lines = path.read_bytes().splitlines()
    payloads = sorted(base64.b64decode(json.loads(line)["data"]) for line in lines)
    return hashlib.sha256(path.read_bytes()).hexdigest(), payloads


async def replay(
    client: Any,
    stream: str,
    window: KinesisRange,
    sink_path: Path,
    store: SQLiteCheckpointStore,
    shard_ids: Sequence[str] = (),
) -> Any:
    reader = KinesisRangeReader(client, stream, window, shard_ids=shard_ids, calls_per_second=5)
    sink = FileSink(sink_path)
    try:
        return await ReplayJob(reader, sink, store).run()
    finally:
        await sink.close()


async def test_a_time_range_replayed_twice_leaves_the_same_state(
    kinesis: Any, aio_kinesis: Any, tmp_path: Path
) -> None:
    stream = create_stream(kinesis, 2)
    written = write_until_distinct_times(kinesis, stream, per_call=6, distinct=4)
    times = sorted({arrival for _, arrival, _ in written.all()})
    start, end = times[1], times[-1]
    expected = sorted(data for _, arrival, data in written.all() if start <= arrival < end)
    window = KinesisRange(start_time=start, end_time=end)
    sink_path = tmp_path / "sink.jsonl"

    first = await replay(aio_kinesis, stream, window, sink_path, SQLiteCheckpointStore(tmp_path / "a.db"))
    once, payloads = file_state(sink_path)
    second = await replay(aio_kinesis, stream, window, sink_path, SQLiteCheckpointStore(tmp_path / "b.db"))
    twice, _ = file_state(sink_path)

    assert payloads == expected and 0 < len(expected) < len(written.all())
    assert once == twice
    assert (first.partitions, first.read, first.written) == (2, len(expected), len(expected))
    assert (second.read, second.written, second.duplicates) == (len(expected), 0, len(expected))


async def test_a_sequence_range_of_one_shard_is_replayed_exactly(
    kinesis: Any, aio_kinesis: Any, tmp_path: Path
) -> None:
    stream = create_stream(kinesis, 1)
    written = write_until_distinct_times(kinesis, stream, per_call=10, distinct=1)
    ((shard_id, entries),) = written.shards.items()
    first_seq, last_seq = entries[5][0], entries[-6][0]
    window = KinesisRange(start_sequence=first_seq, end_sequence=last_seq)
    sink_path = tmp_path / "sink.jsonl"

    for run in ("one", "two"):
        store = SQLiteCheckpointStore(tmp_path / f"{run}.db")
        summary = await replay(aio_kinesis, stream, window, sink_path, store, shard_ids=[shard_id])
        assert summary.read == len(entries) - 10
        if run == "one":
            once, payloads = file_state(sink_path)

    assert file_state(sink_path)[0] == once
    assert payloads == sorted(data for _, _, data in entries[5:-5])


async def test_the_job_checkpoints_in_its_own_namespace_and_resumes_after_a_crash(
    kinesis: Any, aio_kinesis: Any, tmp_path: Path
) -> None:
    stream = create_stream(kinesis, 2)
    written = write_until_distinct_times(kinesis, stream, per_call=10, distinct=1)
    total = len(written.all())
    database = tmp_path / "checkpoints.db"
    live = SQLiteCheckpointStore(database, namespace="live-app")
    live_shard, live_entries = next(iter(written.shards.items()))
    await live.create_if_absent(live_shard)
    lease = await live.acquire(live_shard, "live-worker")
    lease = await live.checkpoint(lease, live_entries[2][0])

    class CrashingSink(FileSink):
        async def write(self, batch: Sequence[ConsumedRecord]) -> None:
            if self.stats.written >= 5:
                raise SinkError("injected crash")
            await super().write(batch[:5])
            if len(batch) > 5:
                raise SinkError("injected crash")

    store = SQLiteCheckpointStore(database, namespace="replay-fix")
    config = ReaderConfig(get_records_limit=4)
    crashing = KinesisRangeReader(aio_kinesis, stream, KinesisRange(), calls_per_second=5, config=config)
    with pytest.raises(SinkError, match="injected crash"):
        await ReplayJob(crashing, CrashingSink(tmp_path / "sink.jsonl"), store).run()
    progress = {lease.shard_id: lease.checkpoint for lease in await store.list()}
    assert any(checkpoint not in (None, SHARD_END) for checkpoint in progress.values())

    reader = KinesisRangeReader(aio_kinesis, stream, KinesisRange(), calls_per_second=5, config=config)
    resumed = await ReplayJob(reader, FileSink(tmp_path / "sink.jsonl"), store).run()

    assert 0 < resumed.read < total  # resumed from the checkpoints, not from the start
    _, payloads = file_state(tmp_path / "sink.jsonl")
    assert payloads == sorted(data for _, _, data in written.all())  # nothing lost across the crash
    assert all(lease.is_shard_end for lease in await store.list())
    assert await live.get(live_shard) == lease  # the live consumer's checkpoint was never touched


async def test_the_read_rate_cap_holds_per_shard(kinesis: Any, aio_kinesis: Any, tmp_path: Path) -> None:
    stream = create_stream(kinesis, 2)
    written = write_until_distinct_times(kinesis, stream, per_call=10, distinct=1)
    now = [0.0]
    calls: dict[str, list[float]] = {}

    def clock() -> float:
        return now[0]

    async def sleep(delay: float) -> None:
        now[0] += delay

    class Calls:
        def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
            if name == "get_records_calls":
                calls.setdefault(dimensions["shard"], []).append(now[0])

    reader = KinesisRangeReader(
        aio_kinesis,
        stream,
        KinesisRange(),
        calls_per_second=2,
        observer=Calls(),
        config=ReaderConfig(get_records_limit=3),
        clock=clock,
        sleep=sleep,
    )
    store = SQLiteCheckpointStore(tmp_path / "c.db")
    summary = await ReplayJob(reader, FileSink(tmp_path / "sink.jsonl"), store).run()

    assert summary.read == len(written.all())
    assert set(calls) == set(written.shards)
    for stamps in calls.values():
        assert len(stamps) >= 5
        busiest = max(sum(1 for t in stamps if start <= t < start + 1.0 - 1e-9) for start in stamps)
        assert busiest <= 2
    assert now[0] >= (max(len(s) for s in calls.values()) - 1) / 2 - 1e-6  # paced, not bursted
