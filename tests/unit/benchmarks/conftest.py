"""A synthetic run outcome, so result, schema and report tests need no server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from benchmarks.recorder import Recorder
from benchmarks.run import RunOptions, RunOutcome
from benchmarks.workload import KeySampler, Skew, WorkloadSpec
from shardline.shardmath import ShardInfo, ShardMap

HASH_MAX = 2**128 - 1


def even_shard_map(count: int) -> ShardMap:
    step = (HASH_MAX + 1) // count
    return ShardMap.from_shards(
        ShardInfo(f"shardId-{i:012d}", i * step, HASH_MAX if i == count - 1 else (i + 1) * step - 1)
        for i in range(count)
    )


@pytest.fixture
def make_shard_map() -> Callable[[int], ShardMap]:
    return even_shard_map


@pytest.fixture
def outcome() -> RunOutcome:
    shard_map = even_shard_map(4)
    shard_ids = [s.shard_id for s in shard_map.shards]
    recorder = Recorder(shard_ids, 0.0)
    sampler = KeySampler(200, Skew(1.2), seed=3)
    record_id = 0
    for second in range(5):
        for _ in range(400):
            key = sampler()
            shard = shard_map.shard_for_key(key).shard_id
            recorder.load.add(shard, second, key, 256)
            recorder.sent[second] += 1
            recorder.on_ack(second, 256, 0.005 + (record_id % 100) / 1000)
            recorder.on_consumed(second, record_id, 0.2)
            record_id += 1
        recorder.throttles[second] += 1
        for shard in shard_ids:
            recorder.on_iterator_age(shard, second, 100 * second)
    options = RunOptions(workload=WorkloadSpec(duration=5, rate=400))
    return RunOutcome(
        options=options,
        recorder=recorder,
        stream="bench-test",
        shard_ids=shard_ids,
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        wall_seconds=5.5,
        client_cpu_seconds=1.0,
        process_cpu_seconds=2.0,
        emulator_in_process=True,
        gateway=None,
    )
