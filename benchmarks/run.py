"""``stream-bench run``: drive the workload through Shardline's producer and consumers.

Latency is measured from each record's INTENDED send time (start + i / rate): when the client
stalls, the records that should have gone out meanwhile still count the stall, so a pause is
not hidden by simply sending less (coordinated omission).

Client CPU: with the embedded target in this process it is the CPU time of the thread running
the event loop (the rest of the process's CPU time is the emulator's, whose threads compete
for the same interpreter lock); when the target runs elsewhere (a child process, AWS) it is
the whole process's user+sys time.  Each result states which (``client_cpu_method``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from benchmarks.environment import environment
from benchmarks.gcpolicy import run_gc_settings
from benchmarks.pacing import produce_then_drain
from benchmarks.progress import Progress
from benchmarks.readback import READER_DEAGGREGATION, read_batch
from benchmarks.readertasks import ReadersPositioned, start_when_positioned, stop_readers
from benchmarks.recorder import Recorder
from benchmarks.targets import KinesisTarget
from benchmarks.workload import KeySampler, WorkloadSpec, encode_payload
from shardline.errors import ConfigurationError
from shardline.interrupts import GracefulInterrupts
from shardline.records import Ack
from shardline.shardmath import ShardMap

__all__ = [
    "CPU_METHOD_PROCESS",
    "CPU_METHOD_THREAD",
    "INTERRUPT_MESSAGE",
    "CpuMeter",
    "RunOptions",
    "RunOutcome",
    "check_consumer_supported",
    "ensure_stream",
    "gateway_counts",
    "run_kinesis",
]

KEY_STRATEGIES = ("device", "random", "round-robin", "salted:N")
CONSUMERS = ("polling", "efo", "both", "none")
"""``both``: one polling and one enhanced fan-out reader per shard, their latencies side by side."""
MIN_LIMITS_PERCENT = 0.01
MAX_LIMITS_PERCENT = 1_000_000.0
"""``--limits-percent``: from a ten-thousandth of AWS's per-shard limits (0.1 records/s) to
ten thousand times them; the partial schema's bound is the upper one."""

INTERRUPT_MESSAGE = (
    "stream-bench: interrupted; stopping and writing the partial result (Ctrl-C again to quit at once)"
)


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
    generator: str = "batch"
    """``batch`` (:mod:`benchmarks.generator`) or ``per-record`` (one send() per record)."""
    workers: int = 1
    worker_id: int = 0
    """This process's part of a run of ``workers``: its shards and the keys that hash to them."""
    new_stream: bool = False
    """The stream was created for this run (by the parent of the workers): read it from its start."""
    run_id: str | None = None
    """What the workers of one run share and no other run has: the parent of ``--workers N``
    draws it for its workers; on AWS Batch it is the array job's id.  ``merge`` refuses partials
    whose ids differ (``None``: a machine started by hand, or a partial from before the field)."""
    limits_percent: float = 100.0
    """The share of AWS's per-shard limits the target enforces (the embedded gateway's
    ``--limits-percent``).  The producer paces and the polling readers budget their GetRecords
    calls to it, as clients tuned for AWS's limits do against AWS: a simulation at 10% is then
    AWS at a tenth of the scale, instead of readers spending most of their calls on throttles
    (at 64 shards, 1,443 throttled GetRecords calls next to 328 answered ones)."""

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ConfigurationError("shards must be >= 1")
        # A vanishing share (1e-300 %) made the busiest shard's utilisation overflow to
        # infinity, which result.json then held as ``Infinity`` (not JSON).
        if not MIN_LIMITS_PERCENT <= self.limits_percent <= MAX_LIMITS_PERCENT:
            raise ConfigurationError(
                f"limits percent must lie between {MIN_LIMITS_PERCENT:g} and {MAX_LIMITS_PERCENT:g}"
            )
        if self.consumer not in CONSUMERS:
            raise ConfigurationError(f"consumer must be one of {', '.join(CONSUMERS)}")
        if self.generator not in ("batch", "per-record"):
            raise ConfigurationError("generator must be batch or per-record")
        if self.workers < 1 or not 0 <= self.worker_id < self.workers:
            raise ConfigurationError("--worker-id must be in 0 .. --workers - 1")
        if self.workers > 1 and self.shards < self.workers:
            raise ConfigurationError("--workers must not exceed --shards (each worker owns whole shards)")
        if self.workers > 1 and self.key_strategy != "device":
            raise ConfigurationError("--workers needs --key-strategy device (workers split the key space)")
        if not (self.key_strategy in KEY_STRATEGIES[:3] or _salt_buckets(self.key_strategy)):
            raise ConfigurationError(f"key strategy must be one of {', '.join(KEY_STRATEGIES)}")


def _read_share(options: RunOptions) -> float:
    """The polling readers' share of a shard's 5 GetRecords calls/s against the target.

    Below AWS's limits (the embedded gateway's ``--limits-percent``) a reader always has records
    to read, so it calls at its budget; at exactly the gateway's rate, network jitter throttled
    about a third of its calls (64 shards at 10%: 106-137 throttled next to 311-342 answered),
    so it takes 90% of the scaled budget (none throttled).  At AWS's own limits the readers keep
    the whole budget, as a reader configured by default does.
    """
    if options.limits_percent >= 100.0:
        return 1.0
    return options.limits_percent / 100.0 * 0.9


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
    emulator_cpu_seconds: float | None = None
    """The emulator's own CPU when it ran in a child process; else derived in the result."""
    client_cpu_method: str = ""
    notes: list[str] = field(default_factory=list)
    interrupted_after: float | None = None
    """Seconds into the producing phase when Ctrl-C / SIGTERM stopped the run (None: it ran out)."""
    environment: dict[str, Any] = field(default_factory=dict)
    """Where it ran (:func:`benchmarks.environment.environment`)."""
    peak_rss_mib: float | None = None
    """The bench process's peak resident memory (the largest worker's when merged); None
    where the platform does not report it.  Includes the emulator when it ran in-process."""


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


async def ensure_stream(client: Any, name: str, shards: int) -> bool:
    """Create the stream unless it exists; True when this run created it.

    Workers on several machines may all try at once: the one whose create fails with
    ResourceInUse waits for the others' stream instead.
    """
    try:
        await client.describe_stream_summary(StreamName=name)
        return False
    except client.exceptions.ResourceNotFoundException:
        pass
    created = True
    try:
        await client.create_stream(StreamName=name, ShardCount=shards)
    except client.exceptions.ResourceInUseException:
        created = False
    await client.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    return created


def check_consumer_supported(options: RunOptions, target_name: str) -> None:
    """Refuse, before any stream is touched, a consumer the target cannot serve.

    The embedded target is moto, which has no SubscribeToShard: an EFO figure from it would
    be made up, so ``--consumer efo`` there is an error rather than a silent note.
    """
    if options.consumer in ("efo", "both") and target_name == "local":
        raise ConfigurationError(
            f"--consumer {options.consumer} cannot be measured on the embedded local target (moto has no "
            "SubscribeToShard); use --consumer polling, or --target kinesis against AWS or an "
            "emulator with enhanced fan-out (AWS_ENDPOINT_URL_KINESIS)"
        )
    if options.consumer in ("efo", "both") and target_name == "msk":
        raise ConfigurationError("--consumer efo is a Kinesis reader; with --target msk use polling or none")


def _start_position(created: bool, run_start: datetime) -> Any:
    """A stream this run created is read from its start; an existing one from just before the run."""
    from consumers.kinesis.positions import AT_TIMESTAMP, TRIM_HORIZON

    return TRIM_HORIZON if created else AT_TIMESTAMP(run_start - timedelta(seconds=1))


async def run_kinesis(
    options: RunOptions,
    target: KinesisTarget,
    *,
    progress_stream: Any = None,
    interrupt_message: str | None = INTERRUPT_MESSAGE,
) -> RunOutcome:
    """Create (or reuse) the stream, produce for ``duration`` seconds, drain, and measure.

    ``interrupt_message`` is printed when a signal stops the run; a ``--workers`` worker passes
    ``None``: its parent speaks for the run (and stops the workers when one of them died).
    """
    from consumers.kinesis.config import ReaderConfig
    from consumers.kinesis.efo import FanOutShardReader, ensure_consumer, stream_arn
    from consumers.kinesis.polling import PollingShardReader
    from consumers.kinesis.session import reader_client
    from producers import KinesisProducer

    check_consumer_supported(options, target.name)
    workload = options.workload
    stream = options.stream or f"stream-bench-{uuid.uuid4().hex[:8]}"
    run_start = datetime.now(UTC)
    # the readers' client: what Kinesis answers decoded as KinesisSource decodes it
    async with reader_client(endpoint_url=target.endpoint_url) as client:
        where = environment(_TARGET_KINDS.get(target.name, target.name), client.meta.endpoint_url,
                            client.meta.region_name)  # fmt: skip
        created = await ensure_stream(client, stream, options.shards)
        listed = await client.list_shards(StreamName=stream)
        shard_map = ShardMap.from_api(listed["Shards"])
        shard_ids = [s.shard_id for s in shard_map.open_shards][options.worker_id :: options.workers]
        consumer_arn: str | None = None
        if options.consumer in ("efo", "both"):
            consumer_arn = await ensure_consumer(
                client, await stream_arn(client, stream), f"stream-bench-{uuid.uuid4().hex[:8]}"
            )
        recorder = Recorder(shard_ids, time.monotonic())  # restarted once the readers hold positions
        chooser = _KeyChooser(options.key_strategy, shard_map, workload.seed)
        stop_consumers = asyncio.Event()
        wall_origin_ns = time.time_ns() - int(time.monotonic() * 1e9)  # monotonic -> epoch ns
        start = _start_position(created or options.new_stream, run_start)

        # aggregates reach the readers whole: read_batch takes only their payload column
        reader_config = ReaderConfig(deaggregation=READER_DEAGGREGATION, budget_share=_read_share(options))

        kinds = {"polling": ["polling"], "efo": ["efo"], "both": ["polling", "efo"]}.get(options.consumer, [])
        positioned = ReadersPositioned((shard_id, kind) for shard_id in shard_ids for kind in kinds)

        def reader_for(shard_id: str, kind: str) -> Any:
            shard = shard_map.get(shard_id)
            observer = positioned.observer(shard_id, kind)
            if kind == "efo":
                assert consumer_arn is not None
                return FanOutShardReader(
                    client,
                    consumer_arn,
                    stream,
                    shard_id,
                    start,
                    shard=shard,
                    config=reader_config,
                    observer=observer,
                )
            return PollingShardReader(
                client, stream, shard_id, start, shard=shard, config=reader_config, observer=observer
            )

        both = options.consumer == "both"
        if both:
            recorder.expect_readers(["polling", "efo"])

        async def consume(shard_id: str, kind: str) -> None:
            counts = kind == "polling" or not both  # with both, the polling reader counts
            with contextlib.suppress(asyncio.CancelledError):
                async for batch in reader_for(shard_id, kind):
                    now = time.monotonic()
                    second = recorder.second(now)
                    if batch.millis_behind_latest is not None and counts:
                        recorder.on_iterator_age(shard_id, second, batch.millis_behind_latest)
                    now_ns = wall_origin_ns + int(now * 1e9)
                    read_batch(
                        recorder,
                        batch.records,
                        second,
                        now_ns,
                        wall_origin_ns + int(recorder.start * 1e9),  # the run's start (epoch ns)
                        reader=kind if both else None,
                        counts=counts,
                    )
                    if stop_consumers.is_set():
                        return

        consumer_tasks: dict[asyncio.Task[None], str] = {
            asyncio.create_task(consume(shard_id, kind)): f"the {kind} reader of {shard_id}"
            for shard_id in shard_ids
            for kind in kinds
        }

        # The producer builds its own client, as it does for a user: its own connection pool
        # and its client settings (records are validated once, by the producer, not again by
        # botocore: that walk over every PutRecords entry was a tenth of the bench's CPU).
        producer = KinesisProducer(
            stream,
            endpoint_url=target.endpoint_url,
            observer=recorder,
            aggregate=options.aggregate,
            rate_limit_percent=min(options.limits_percent, 100.0),
        )
        # Started before the generator is built, which then routes keys with the producer's own
        # shard map: a key is hashed once, by whichever routes it first, and the other finds it
        # in the map's cache (with a million keys nearly every key is new, and the generator
        # and the producer each paid an MD5 for it).  produce_then_drain closes it.
        await producer.start()
        try:
            # The clock starts once every reader holds a position (see benchmarks.readertasks):
            # records are due from then on, and client CPU is measured from then on.
            positions_note = await start_when_positioned(positioned, consumer_tasks)
            loop_start = time.monotonic()
            recorder.restart(loop_start)
            send_one, send_batch, rate = _senders(
                options,
                producer,
                producer.shard_map,
                shard_ids,
                recorder,
                chooser,
                loop_start,
                wall_origin_ns,
            )
        except BaseException:  # interrupted while the readers got positions: stop them too
            await producer.close()
            await stop_readers(consumer_tasks)
            raise
        stop = asyncio.Event()
        with (
            run_gc_settings(),
            Progress(
                lambda: recorder.snapshot(time.monotonic(), workload.duration), stream=progress_stream
            ) as progress,
            GracefulInterrupts(on_stop=stop.set, message=interrupt_message) as interrupts,
        ):
            cpu = CpuMeter(target)
            await produce_then_drain(
                producer,
                producer.flush,
                recorder=recorder,
                rate=rate,
                duration=workload.duration,
                start=loop_start,
                send_one=send_one,
                send_batch=send_batch,
                tick=progress.tick,
                consumers_running=(
                    (lambda: not all(task.done() for task in consumer_tasks)) if consumer_tasks else None
                ),
                drain_seconds=options.drain_seconds,
                stop=stop,
            )
            interrupted_after = time.monotonic() - loop_start if interrupts.interrupted else None
            stop_consumers.set()
            reader_notes = await stop_readers(consumer_tasks)
            if positions_note is not None:
                reader_notes.insert(0, positions_note)
            progress.tick()
            wall = time.monotonic() - loop_start
            client_cpu, process_cpu, emulator_cpu = cpu.read()
        if consumer_arn is not None:
            with contextlib.suppress(Exception):
                await client.deregister_stream_consumer(ConsumerARN=consumer_arn)
        if created and not target.is_embedded and options.workers == 1:
            with contextlib.suppress(Exception):
                await client.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
    return RunOutcome(
        options=options,
        recorder=recorder,
        stream=stream,
        shard_ids=shard_ids,
        started_at=datetime.now(UTC) - _seconds(wall),
        wall_seconds=wall,
        client_cpu_seconds=client_cpu,
        process_cpu_seconds=process_cpu,
        emulator_in_process=target.in_process,
        gateway=gateway_counts(target, stream, shard_ids),
        emulator_cpu_seconds=emulator_cpu,
        client_cpu_method=cpu.method,
        consumer_note=_consumer_note(options, consumer_arn is not None),
        notes=reader_notes,
        interrupted_after=interrupted_after,
        environment=where,
        peak_rss_mib=peak_rss_mib(),
    )


def _senders(
    options: RunOptions,
    producer: Any,
    shard_map: ShardMap,
    shard_ids: list[str],
    recorder: Recorder,
    chooser: _KeyChooser,
    loop_start: float,
    wall_origin_ns: int,
) -> tuple[Any, Any, float | None]:
    """The generator's send callables and the rate this worker is paced at (None: unbounded)."""
    workload = options.workload
    if options.generator == "batch":
        from benchmarks.generator import LoadGenerator, key_share

        indices = key_share(workload.keys, shard_map, shard_ids) if options.workers > 1 else None
        generator = LoadGenerator(
            workload=workload,
            shard_map=shard_map,
            recorder=recorder,
            producer=producer,
            start=loop_start,
            wall_origin_ns=wall_origin_ns,
            choose_key=None if options.key_strategy == "device" else chooser,
            indices=indices,
            id_stride=options.workers,
            id_offset=options.worker_id,
        )
        return None, generator.send_batch, generator.rate
    sender = _per_record_sender(options, producer, shard_map, recorder, chooser, wall_origin_ns)
    return sender, None, workload.rate


def _per_record_sender(
    options: RunOptions,
    producer: Any,
    shard_map: ShardMap,
    recorder: Recorder,
    chooser: _KeyChooser,
    wall_origin_ns: int,
) -> Any:
    """The original generator: one send() and one done-callback per record (kept to compare with)."""
    workload = options.workload
    sampler = KeySampler(workload.keys, workload.skew, workload.seed)
    size = workload.record_size
    fmt = workload.payload_format

    def on_done(second: int, nbytes: int, intended: float, future: asyncio.Future[Ack]) -> None:
        if future.cancelled() or future.exception() is not None:
            recorder.failed[second] += 1
            return
        now = time.monotonic()
        recorder.on_ack(second, nbytes, now - intended, now)

    async def send_one(index: int, intended: float) -> None:
        device = sampler()
        key, ehk = chooser(device)
        second = recorder.second(intended)
        data = encode_payload(index, wall_origin_ns + int(intended * 1e9), device, size, fmt)
        shard = shard_map.shard_for_key(key, ehk).shard_id
        recorder.load.add(shard, second, device, len(data) + len(key))
        recorder.sent[second] += 1
        future = await producer.send(data, partition_key=key, explicit_hash_key=ehk)
        future.add_done_callback(partial(on_done, second, len(data), intended))

    return send_one


_TARGET_KINDS = {
    "local": "embedded local target (moto behind the limit-enforcing gateway)",
    "kinesis": "Kinesis (the standard AWS configuration decides the endpoint)",
}


def _consumer_note(options: RunOptions, fan_out: bool) -> str | None:
    if options.consumer == "both":
        return (
            "consumer: one GetRecords polling reader and one enhanced fan-out reader per shard; "
            "consumed records are the polling reader's; end-to-end latency is shown per reader"
        )
    if fan_out:
        return "consumer: enhanced fan-out (SubscribeToShard); iterator age is the pushed MillisBehindLatest"
    if options.consumer == "polling":
        return "consumer: GetRecords polling, one reader per shard"
    return None


def gateway_counts(target: KinesisTarget, stream: str, shard_ids: list[str] | None) -> dict[str, Any] | None:
    """What the local gateway counted per shard (``shard_ids``: only those; None: all)."""
    stats = target.gateway_stats()
    if stats is None:
        return None
    return {
        shard: {
            "accepted_records": s.accepted_records,
            "accepted_bytes": s.accepted_bytes,
            "throttled_records": s.throttled_records,
            "get_records_calls": s.get_records_calls,
            "get_records_throttled": s.get_records_throttled,
        }
        for shard, s in sorted(stats.for_stream(stream).items())
        if shard_ids is None or shard in shard_ids
    }


CPU_METHOD_THREAD = (
    "client CPU = CPU time of the bench's event-loop thread (time.thread_time); the embedded "
    "emulator (moto + limit gateway) runs in other threads of the same process and competes for "
    "its interpreter lock, so the client figure may carry that contention and is not strictly "
    "comparable with a client measured alone; use --embedded-target-process for a clean figure"
)
CPU_METHOD_PROCESS = (
    "client CPU = user+sys CPU time of the whole bench process (all its threads, including the "
    "producer's and consumers' I/O threads); the target runs in another process"
)


class CpuMeter:
    """Client, process and (child-process) emulator CPU seconds over the measured part of a run."""

    def __init__(self, target: KinesisTarget | None) -> None:
        self._thread_only = target is not None and target.in_process
        self._emulator = target.emulator_cpu if target is not None else None
        self.method = CPU_METHOD_THREAD if self._thread_only else CPU_METHOD_PROCESS
        self._thread0 = time.thread_time()
        self._process0 = _process_cpu()
        self._emulator0 = self._emulator() if self._emulator is not None else None

    def read(self) -> tuple[float, float, float | None]:
        process = _process_cpu() - self._process0
        client = time.thread_time() - self._thread0 if self._thread_only else process
        emulator = None
        if self._emulator is not None and self._emulator0 is not None:
            emulator = self._emulator() - self._emulator0
        return client, process, emulator


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _process_cpu() -> float:
    times = os.times()
    return times.user + times.system


def peak_rss_mib() -> float | None:
    """This process's peak resident set size so far in MiB (None without ``getrusage``).

    The memory bound of a run is a claim the result should carry, not something measured
    beside it: the bench's own per-key and per-second tables are sized to stay flat, and this
    shows whether they did.
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux
