"""Kafka replay by offsets on the Tansu broker: the same range twice, and resume from the job's checkpoint.

Timestamps are resolved by ``offsets_for_times``, which Tansu's memory engine answers
unreliably (LOCAL_STACK.md), so the time path is covered by the offsets it resolves to and
by the CLI's argument checks, not here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from confluent_kafka import Producer

from consumers.checkpoint.sqlite import SQLiteCheckpointStore
from consumers.kafka import OffsetRange
from consumers.replay.job import ReplayJob
from consumers.replay.kafka_range import KafkaRangeReader
from consumers.sinks.file import FileSink
from shardline.kafka_config import KafkaClientConfig
from tests.kafka_topics import new_topic

pytestmark = pytest.mark.integration


def produce(bootstrap: str, topic: str, partitions: int, per_partition: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    failures: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for partition in range(partitions):
        for n in range(per_partition):
            value = json.dumps({"p": partition, "n": n}).encode()
            producer.produce(topic, value, key=f"k{n}", partition=partition, on_delivery=delivered)
    assert producer.flush(30) == 0 and not failures


def sink_state(path: Path) -> tuple[str, list[tuple[int, int]]]:
    lines = path.read_bytes().splitlines()
    values = sorted(
        (payload["p"], payload["n"])
        for payload in (json.loads(base64.b64decode(json.loads(line)["data"])) for line in lines)
    )
    return hashlib.sha256(path.read_bytes()).hexdigest(), values


async def test_an_offset_range_replayed_twice_leaves_the_same_state(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = new_topic(kafka_bootstrap, 2, prefix="replay")
    produce(kafka_bootstrap, topic, 2, 30)
    client = KafkaClientConfig(kafka_bootstrap)
    ranges = [OffsetRange(topic, 0, 5, 25), OffsetRange(topic, 1, 0, 10)]
    sink_path = tmp_path / "sink.jsonl"

    summaries = []
    hashes = []
    for run in ("one", "two"):
        sink = FileSink(sink_path)
        store = SQLiteCheckpointStore(tmp_path / f"{run}.db", namespace="replay-kafka")
        summaries.append(await ReplayJob(KafkaRangeReader(ranges, client), sink, store).run())
        await sink.close()
        hashes.append(sink_state(sink_path)[0])

    assert hashes[0] == hashes[1]
    _, values = sink_state(sink_path)
    assert values == sorted([(0, n) for n in range(5, 25)] + [(1, n) for n in range(10)])
    counts = [(s.partitions, s.read, s.written, s.duplicates) for s in summaries]
    assert counts == [(2, 30, 30, 0), (2, 30, 0, 30)]


async def test_a_job_resumes_after_its_last_checkpoint(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = new_topic(kafka_bootstrap, 1, prefix="replay")
    produce(kafka_bootstrap, topic, 1, 20)
    client = KafkaClientConfig(kafka_bootstrap)
    store = SQLiteCheckpointStore(tmp_path / "job.db", namespace="replay-kafka")
    partition = f"{topic}/0"
    await store.create_if_absent(partition)
    lease = await store.acquire(partition, "crashed-run")
    await store.checkpoint(lease, "11")  # offsets 0..11 were written before the crash

    sink = FileSink(tmp_path / "sink.jsonl")
    summary = await ReplayJob(KafkaRangeReader([OffsetRange(topic, 0, 0, 20)], client), sink, store).run()
    await sink.close()

    assert summary.read == 8
    _, values = sink_state(tmp_path / "sink.jsonl")
    assert values == [(0, n) for n in range(12, 20)]
    finished = await store.get(partition)
    assert finished is not None and finished.is_shard_end
