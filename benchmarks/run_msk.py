"""``stream-bench run --target msk``: the same workload through Shardline's Kafka producer and consumer.

Records go to a topic (created with ``--shards`` partitions unless ``--topic`` names an
existing one) through :class:`producers.kafka.KafkaProducer`, paced by the same open-loop
schedule as the Kinesis targets, so send-to-ack latency is measured from each record's
intended send time.  By default a pacing tick's records go in one ``send_many`` call
(:mod:`benchmarks.kafka_generator`); ``--generator per-record``, and the key strategies that
pick a key or a partition per record, send each with its own ``send()``.  A consumer-group
member (:class:`consumers.kafka.KafkaSource`) reads them back for consumer records/s and
end-to-end latency.

Per-partition load comes from the delivery reports (the partition the broker actually
stored each record in).  Kafka has no per-partition throughput quota, so partitions are
judged on skew only.  The "iterator age" series is the Kafka analogue of MillisBehindLatest:
for each batch the consumer reads, how old its last record is while the partition still
has newer acknowledged records, and 0 once the consumer is at the tip.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from benchmarks.environment import environment
from benchmarks.gcpolicy import run_gc_settings
from benchmarks.kafka_generator import KafkaLoadGenerator
from benchmarks.pacing import produce_then_drain
from benchmarks.progress import Progress
from benchmarks.readback import read_batch
from benchmarks.readertasks import ReadersPositioned, start_when_positioned, stop_readers
from benchmarks.recorder import Recorder
from benchmarks.run import (
    INTERRUPT_MESSAGE,
    CpuMeter,
    RunOptions,
    RunOutcome,
    check_consumer_supported,
    peak_rss_mib,
)
from benchmarks.targets import KafkaTarget
from benchmarks.workload import KeySampler, decode_payload, encode_payload
from shardline.errors import ConfigurationError
from shardline.interrupts import GracefulInterrupts
from shardline.records import KafkaAck

__all__ = ["partition_label", "run_msk"]

_ADMIN_TIMEOUT_S = 30.0
_CONSUMER_SESSION_TIMEOUT_MS = 6_000
"""The smallest session timeout brokers accept by default; the first group join waits about half of it."""
_STOP_TIMEOUT_S = 10.0


def partition_label(partition: int) -> str:
    """How a partition is named in results and reports (sorts in partition order)."""
    return f"partition-{partition:04d}"


class _KafkaKeyChooser:
    """Turns a device id into (key, explicit partition) for the chosen key strategy."""

    def __init__(self, strategy: str, partitions: int, seed: int) -> None:
        self._strategy = strategy
        kind, _, count = strategy.partition(":")
        self._buckets = int(count) if kind == "salted" else 0
        self._partitions = partitions
        self._counter = 0
        self._rng = random.Random(seed)

    def __call__(self, device: str) -> tuple[str, int | None]:
        self._counter += 1
        if self._strategy == "device":
            return device, None
        if self._strategy == "random":
            return f"{self._rng.getrandbits(64):016x}", None
        if self._strategy == "round-robin":
            return device, self._counter % self._partitions
        return f"{device}#{self._counter % self._buckets}", None


def _ensure_topic(client: Any, topic: str, partitions: int) -> tuple[int, bool]:
    """The topic's partition count, creating it when missing; True when this run created it."""
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = client.new_client(AdminClient)
    metadata = admin.list_topics(timeout=_ADMIN_TIMEOUT_S)
    existing = metadata.topics.get(topic)
    if existing is not None and existing.error is None and existing.partitions:
        return len(existing.partitions), False
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=-1)])
    try:
        futures[topic].result(timeout=_ADMIN_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - a broker without KIP-464 defaults: ask for one replica
        retry = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        retry[topic].result(timeout=_ADMIN_TIMEOUT_S)
    return partitions, True


def _delete_topic(client: Any, topic: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = client.new_client(AdminClient)
    with contextlib.suppress(Exception):
        admin.delete_topics([topic])[topic].result(timeout=_ADMIN_TIMEOUT_S)


async def run_msk(options: RunOptions, target: KafkaTarget, *, progress_stream: Any = None) -> RunOutcome:
    """Create (or reuse) the topic, produce for ``duration`` seconds, drain, and measure."""
    from consumers.kafka import KafkaConsumerConfig, KafkaSource
    from producers.kafka import KafkaProducer

    check_consumer_supported(options, "msk")
    if options.aggregate:
        raise ConfigurationError("KPL aggregation is a Kinesis format; run --target msk with --no-aggregate")
    workload = options.workload
    topic = options.stream or f"stream-bench-{uuid.uuid4().hex[:8]}"
    loop = asyncio.get_running_loop()
    partitions, created = await loop.run_in_executor(
        None, _ensure_topic, target.client, topic, options.shards
    )
    partition_ids = [partition_label(p) for p in range(partitions)]
    loop_start = time.monotonic()
    recorder = Recorder(partition_ids, loop_start)
    sampler = KeySampler(workload.keys, workload.skew, workload.seed)
    chooser = _KafkaKeyChooser(options.key_strategy, partitions, workload.seed)
    wall_origin_ns = time.time_ns() - int(time.monotonic() * 1e9)  # monotonic -> epoch ns
    run_origin_ns = wall_origin_ns + int(loop_start * 1e9)
    newest_acked: dict[int, int] = {}
    notes = ["Kafka has no per-partition throughput quota: partitions are judged on skew only"]

    source: KafkaSource | None = None
    consumer_task: asyncio.Task[None] | None = None
    # The clock starts once the group member has its partitions (see benchmarks.readertasks):
    # joining the group takes seconds, which the first records' latency would otherwise carry.
    assigned = ReadersPositioned([("group", "kafka")] if options.consumer != "none" else [])
    if options.consumer != "none":
        config = KafkaConsumerConfig(
            group_id=f"stream-bench-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest" if created else "latest",
            session_timeout_ms=_CONSUMER_SESSION_TIMEOUT_MS,
        )
        source = KafkaSource([topic], target.client, config, observer=assigned.observer("group", "kafka"))
        consumer_task = asyncio.create_task(
            _consume(source, recorder, newest_acked, wall_origin_ns, run_origin_ns)
        )
        notes.append("consumer: a Kafka consumer-group member (KafkaSource) reading every partition")
        if not created:
            notes.append("existing topic: records sent before the consumer joined its group are not read")

    async def stop_member() -> list[str]:
        """Stop and close the group member; a note if it had died."""
        if source is None or consumer_task is None:
            return []
        await source.stop()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(consumer_task), _STOP_TIMEOUT_S)
        dead = await stop_readers({consumer_task: "the consumer-group member"})
        await source.close()
        return dead

    try:
        member_note = await start_when_positioned(
            assigned,
            [consumer_task] if consumer_task is not None else [],
            readers="consumer-group members",
            missing="partitions assigned",
        )
    except BaseException:  # interrupted while waiting: the member still leaves its group
        await stop_member()
        raise
    if member_note is not None:
        notes.append(member_note)
    producer = KafkaProducer(topic, target.client, observer=recorder)
    try:
        await _warm_up(producer)
    except BaseException:  # the cluster refused it, or interrupted: nothing was measured yet
        await producer.close()
        await stop_member()
        raise
    loop_start = time.monotonic()
    recorder.restart(loop_start)  # records are due from now; _consume's floor stays earlier
    size, fmt = workload.record_size, workload.payload_format

    def on_done(
        second: int, nbytes: int, device: str, intended: float, future: asyncio.Future[KafkaAck]
    ) -> None:
        if future.cancelled() or future.exception() is not None:
            recorder.failed[second] += 1
            return
        ack = future.result()
        now = time.monotonic()
        recorder.on_ack(second, nbytes, now - intended, now)
        recorder.load.add(partition_label(ack.partition), second, device, nbytes)
        offset = ack.offset  # None: acknowledged without an offset, the newest known stays
        if offset is not None and offset > newest_acked.get(ack.partition, -1):
            newest_acked[ack.partition] = offset

    async def send_one(index: int, intended: float) -> None:
        device = sampler()
        key, partition = chooser(device)
        second = recorder.second(intended)
        data = encode_payload(index, wall_origin_ns + int(intended * 1e9), device, size, fmt)
        recorder.sent[second] += 1
        future = await producer.send(data, key, partition=partition)
        future.add_done_callback(partial(on_done, second, len(data) + len(key), device, intended))

    generator = _batch_generator(options, producer, recorder, loop_start, wall_origin_ns, newest_acked)
    with run_gc_settings():
        cpu = CpuMeter(None)
        stop = asyncio.Event()
        interrupted_after: float | None = None
        try:
            with (
                Progress(
                    lambda: recorder.snapshot(time.monotonic(), workload.duration), stream=progress_stream
                ) as progress,
                GracefulInterrupts(on_stop=stop.set, message=INTERRUPT_MESSAGE) as interrupts,
            ):
                await produce_then_drain(
                    producer,
                    producer.flush,
                    recorder=recorder,
                    rate=workload.rate if generator is None else generator.rate,
                    duration=workload.duration,
                    start=loop_start,
                    send_one=send_one if generator is None else None,
                    send_batch=None if generator is None else generator.send_batch,
                    tick=progress.tick,
                    consumers_running=(
                        (lambda: not consumer_task.done()) if consumer_task is not None else None
                    ),
                    drain_seconds=options.drain_seconds,
                    stop=stop,
                )
                if interrupts.interrupted:
                    interrupted_after = time.monotonic() - loop_start
                progress.tick()
        finally:
            notes += await stop_member()
        wall = time.monotonic() - loop_start
        client_cpu, process_cpu, _ = cpu.read()
    if created and options.stream is None:
        await loop.run_in_executor(None, _delete_topic, target.client, topic)
    return RunOutcome(
        options=options,
        recorder=recorder,
        stream=topic,
        shard_ids=partition_ids,
        started_at=datetime.now(UTC) - timedelta(seconds=wall),
        wall_seconds=wall,
        client_cpu_seconds=client_cpu,
        process_cpu_seconds=process_cpu,
        emulator_in_process=False,
        gateway=None,
        client_cpu_method=cpu.method,
        notes=notes,
        interrupted_after=interrupted_after,
        environment=environment("Kafka / MSK", target.bootstrap, None),
        peak_rss_mib=peak_rss_mib(),
    )


_WARM_UP_KEY = b"stream-bench-warm-up"
_WARM_UP_VALUE = b"stream-bench warm-up: not a bench record"


async def _warm_up(producer: Any) -> None:
    """Send one message before the clock starts, as the Kinesis targets start their producer.

    A fresh librdkafka producer connects, fetches the topic's metadata and gets its
    idempotent producer id on its first message: about a second on the local broker, which
    the first second's records carried as latency (its p50 507 ms, and a p99 of ~0.9 s for a
    whole 10 s run at 2,000 records/s).  The message is no bench payload, so readers skip it.
    """
    await producer.start()
    await producer.send_and_wait(_WARM_UP_VALUE, _WARM_UP_KEY)


def _batch_generator(
    options: RunOptions,
    producer: Any,
    recorder: Recorder,
    loop_start: float,
    wall_origin_ns: int,
    newest_acked: dict[int, int],
) -> KafkaLoadGenerator | None:
    """The tick-batch generator (``--generator batch``, the default), or None for the
    per-record path: ``--generator per-record``, and the key strategies that pick a partition
    or a key per message (the batch path sends each device's own key)."""
    workload = options.workload
    if (
        options.generator != "batch"
        or options.key_strategy != "device"
        or workload.payload_format != "binary"
    ):
        return None
    return KafkaLoadGenerator(
        workload=workload,
        recorder=recorder,
        producer=producer,
        start=loop_start,
        wall_origin_ns=wall_origin_ns,
        partition_label=partition_label,
        newest_acked=newest_acked,
    )


async def _consume(
    source: Any, recorder: Recorder, newest_acked: dict[int, int], wall_origin_ns: int, run_origin_ns: int
) -> None:
    """Count what the group member reads: distinct records, end-to-end latency, time behind the tip.

    A batch's records are counted in bulk by :func:`benchmarks.readback.read_batch`, as the
    Kinesis readers' are (one id and latency column a batch, not a histogram write a record).
    """
    async for batch in source.batches():
        records = batch.records
        if not records:
            continue
        now = time.monotonic()
        second = recorder.second(now)
        now_ns = wall_origin_ns + int(now * 1e9)
        read_batch(recorder, records, second, now_ns, run_origin_ns)
        position = records[-1].position
        partition = getattr(position, "partition_id", None)
        offset = getattr(position, "offset", None)
        if partition is None or offset is None:
            continue
        behind = newest_acked.get(partition, -1) > offset
        last_intended_ns = _last_intended_ns(records, run_origin_ns) if behind else None
        age_ms = (now_ns - last_intended_ns) // 1_000_000 if last_intended_ns is not None else 0
        recorder.on_iterator_age(partition_label(partition), second, max(age_ms, 0))


def _last_intended_ns(records: Sequence[Any], floor_ns: int) -> int | None:
    """The intended send time of the batch's last bench record written from ``floor_ns`` on."""
    for index in range(len(records) - 1, -1, -1):
        payload = decode_payload(records[index].data)
        if payload is not None and payload.intended_ns >= floor_ns:
            return payload.intended_ns
    return None
