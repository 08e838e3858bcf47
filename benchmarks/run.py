"""``stream-bench run``: drive the workload through Shardline's producer and consumers.

Latency is measured from each record's INTENDED send time (start + i / rate): when the client
stalls, the records that should have gone out meanwhile still count the stall, so a pause is
not hidden by simply sending less (coordinated omission).  Client CPU is the CPU time of the
thread running the event loop; with the embedded target the rest of the process's CPU time
is the emulator's (moto and the gateway run in their own threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.progress import Progress
from benchmarks.recorder import Recorder
from benchmarks.targets import KinesisTarget
from benchmarks.workload import KeySampler, WorkloadSpec, decode_payload, encode_payload
from shardline.errors import ConfigurationError
from shardline.records import Ack
from shardline.shardmath import ShardMap

__all__ = ["RunOptions", "RunOutcome", "run_kinesis"]

KEY_STRATEGIES = ("device", "random", "round-robin", "salted:N")


@dataclass(frozen=True, slots=True)
class RunOptions:
    """One run's settings (the CLI's flags); defaults finish in about 25 s on a laptop."""

    target: str = "local"
    stream: str | None = None
    shards: int = 4
    workload: WorkloadSpec = field(default_factory=WorkloadSpec)
    key_strategy: str = "device"
    aggregate: bool = True
    consumer: str = "polling"
    drain_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ConfigurationError("shards must be >= 1")
        if self.consumer not in ("polling", "efo", "none"):
            raise ConfigurationError("consumer must be polling, efo or none")
        if not (self.key_strategy in KEY_STRATEGIES[:3] or _salt_buckets(self.key_strategy)):
            raise ConfigurationError(f"key strategy must be one of {', '.join(KEY_STRATEGIES)}")


def _salt_buckets(strategy: str) -> int:
    kind, _, count = strategy.partition(":")
    if kind != "salted" or not count.isdigit() or int(count) < 1:
        return 0
    return int(count)


@dataclass
class RunOutcome:
    """What the result builder needs: the recorder, the timings and the environment."""

    options: RunOptions
    recorder: Recorder
    stream: str
    shard_ids: list[str]
    started_at: datetime
    wall_seconds: float
    client_cpu_seconds: float
    process_cpu_seconds: float
    emulator_in_process: bool
    gateway: dict[str, Any] | None
    consumer_note: str | None = None


class _KeyChooser:
    """Turns a device id into (partition key, explicit hash key) for the chosen strategy."""

    def __init__(self, strategy: str, shard_map: ShardMap, seed: int) -> None:
        self._strategy = strategy
        self._buckets = _salt_buckets(strategy)
        self._starts = [s.starting_hash_key for s in shard_map.open_shards]
        self._counter = 0
        self._rng = random.Random(seed)

    def __call__(self, device: str) -> tuple[str, int | None]:
        self._counter += 1
        if self._strategy == "device":
            return device, None
        if self._strategy == "random":
            return f"{self._rng.getrandbits(64):016x}", None
        if self._strategy == "round-robin":
            return device, self._starts[self._counter % len(self._starts)]
        return f"{device}#{self._counter % self._buckets}", None


async def _ensure_stream(client: Any, name: str, shards: int) -> bool:
    """Create the stream unless it exists; True when this run created it."""
    try:
        await client.describe_stream_summary(StreamName=name)
        return False
    except client.exceptions.ResourceNotFoundException:
        pass
    await client.create_stream(StreamName=name, ShardCount=shards)
    await client.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    return True


async def run_kinesis(
    options: RunOptions, target: KinesisTarget, *, progress_stream: Any = None
) -> RunOutcome:
    """Create (or reuse) the stream, produce for ``duration`` seconds, drain, and measure."""
    from aiobotocore.session import get_session

    from consumers.kinesis.polling import PollingShardReader
    from consumers.kinesis.positions import LATEST, TRIM_HORIZON
    from producers import KinesisProducer

    workload = options.workload
    stream = options.stream or f"stream-bench-{uuid.uuid4().hex[:8]}"
    session = get_session()
    async with session.create_client("kinesis", endpoint_url=target.endpoint_url) as client:
        created = await _ensure_stream(client, stream, options.shards)
        listed = await client.list_shards(StreamName=stream)
        shard_map = ShardMap.from_api(listed["Shards"])
        shard_ids = [s.shard_id for s in shard_map.open_shards]
        loop_start = time.monotonic()
        recorder = Recorder(shard_ids, loop_start)
        sampler = KeySampler(workload.keys, workload.skew, workload.seed)
        chooser = _KeyChooser(options.key_strategy, shard_map, workload.seed)
        stop_consumers = asyncio.Event()
        consumer_tasks: list[asyncio.Task[None]] = []
        wall_origin_ns = time.time_ns() - int(time.monotonic() * 1e9)  # monotonic -> epoch ns

        async def consume(shard_id: str) -> None:
            reader = PollingShardReader(
                client, stream, shard_id, TRIM_HORIZON if created else LATEST, shard=shard_map.get(shard_id)
            )
            with contextlib.suppress(asyncio.CancelledError):
                async for batch in reader:
                    now = time.monotonic()
                    second = recorder.second(now)
                    if batch.millis_behind_latest is not None:
                        recorder.on_iterator_age(shard_id, second, batch.millis_behind_latest)
                    now_ns = wall_origin_ns + int(now * 1e9)
                    for record in batch.records:
                        payload = decode_payload(record.data)
                        if payload is not None and payload.intended_ns >= run_origin_ns:
                            recorder.on_consumed(
                                second, payload.record_id, (now_ns - payload.intended_ns) / 1e9
                            )
                    if stop_consumers.is_set():
                        return

        run_origin_ns = wall_origin_ns + int(loop_start * 1e9)
        if options.consumer == "polling":
            consumer_tasks = [asyncio.create_task(consume(shard_id)) for shard_id in shard_ids]
        consumer_note = None
        if options.consumer == "efo":
            consumer_note = "efo consumer not measured in this version; use --consumer polling"

        producer = KinesisProducer(stream, client=client, observer=recorder, aggregate=options.aggregate)
        rate = workload.rate
        duration = workload.duration
        size = workload.record_size
        fmt = workload.payload_format

        def on_done(second: int, nbytes: int, intended: float, future: asyncio.Future[Ack]) -> None:
            if future.cancelled() or future.exception() is not None:
                recorder.failed[second] += 1
                return
            recorder.on_ack(second, nbytes, time.monotonic() - intended)

        def snapshot() -> dict[str, Any]:
            now = time.monotonic()
            second = recorder.second(now)
            summary = recorder.ack_latency.summary_ms()
            ages = [ages.get(second - 1, 0) for ages in recorder.iterator_age.values()]
            return {
                "elapsed": now - loop_start,
                "duration": duration,
                "sent": recorder.total_sent,
                "acked": recorder.total_acked,
                "rate": recorder.acked.get(second - 1, 0),
                "consumed": recorder.total_consumed,
                "throttles": sum(recorder.throttles.values()),
                "retries": sum(recorder.retries.values()),
                "p50_ms": summary["p50"],
                "p99_ms": summary["p99"],
                "iterator_age_ms": max(ages, default=0),
            }

        cpu_thread_0 = time.thread_time()
        cpu_process_0 = _process_cpu()
        sent = 0
        with Progress(snapshot, stream=progress_stream) as progress:
            async with producer:
                next_tick = loop_start + 1.0
                while True:
                    now = time.monotonic()
                    recorder.now = now
                    elapsed = now - loop_start
                    if elapsed >= duration:
                        break
                    due = int(elapsed * rate) + 1 if rate else sent + 100
                    while sent < due:
                        intended = loop_start + sent / rate if rate else time.monotonic()
                        device = sampler()
                        key, ehk = chooser(device)
                        second = recorder.second(intended)
                        data = encode_payload(sent, wall_origin_ns + int(intended * 1e9), device, size, fmt)
                        shard = shard_map.shard_for_key(key, ehk).shard_id
                        recorder.load.add(shard, second, device, len(data) + len(key))
                        recorder.sent[second] += 1
                        future = await producer.send(data, partition_key=key, explicit_hash_key=ehk)
                        future.add_done_callback(partial(on_done, second, len(data), intended))
                        sent += 1
                    if time.monotonic() >= next_tick:
                        progress.tick()
                        next_tick += 1.0
                    if rate:
                        await asyncio.sleep(max(0.0, loop_start + sent / rate - time.monotonic()))
                    else:
                        await asyncio.sleep(0)
                await producer.flush()
            recorder.now = time.monotonic()
            produce_end = time.monotonic()
            if consumer_tasks:
                deadline = produce_end + options.drain_seconds
                while recorder.total_consumed < recorder.total_acked and time.monotonic() < deadline:
                    progress.tick()
                    await asyncio.sleep(0.25)
                stop_consumers.set()
                for task in consumer_tasks:
                    task.cancel()
                await asyncio.gather(*consumer_tasks, return_exceptions=True)
            progress.tick()
        wall = time.monotonic() - loop_start
        client_cpu = time.thread_time() - cpu_thread_0
        process_cpu = _process_cpu() - cpu_process_0
        if created and target.name != "local":
            with contextlib.suppress(Exception):
                await client.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
    stats = target.gateway_stats()
    gateway: dict[str, Any] | None = None
    if stats is not None:
        gateway = {
            shard: {
                "accepted_records": s.accepted_records,
                "accepted_bytes": s.accepted_bytes,
                "throttled_records": s.throttled_records,
                "get_records_calls": s.get_records_calls,
                "get_records_throttled": s.get_records_throttled,
            }
            for shard, s in sorted(stats.for_stream(stream).items())
        }
    return RunOutcome(
        options=options,
        recorder=recorder,
        stream=stream,
        shard_ids=shard_ids,
        started_at=datetime.now(UTC) - _seconds(wall),
        wall_seconds=wall,
        client_cpu_seconds=client_cpu,
        process_cpu_seconds=process_cpu,
        emulator_in_process=target.gateway is not None,
        gateway=gateway,
        consumer_note=consumer_note,
    )


def _seconds(value: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=value)


def _process_cpu() -> float:
    times = os.times()
    return times.user + times.system


def output_dir(path: str | None) -> Path:
    directory = Path(path or "bench-results")
    directory.mkdir(parents=True, exist_ok=True)
    return directory
