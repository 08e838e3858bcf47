"""The Kafka tick generator on a fake producer and clock: load, routes and latency from acks."""

from __future__ import annotations

import asyncio
from array import array
from typing import Any

import pytest

from benchmarks.kafka_generator import KafkaLoadGenerator
from benchmarks.recorder import Recorder
from benchmarks.run_msk import partition_label
from benchmarks.workload import Skew, WorkloadSpec, decode_payload
from producers._kafka_batch import KafkaBatchAcks
from shardline.errors import DeliveryError, ShardlineError
from tests.kafka_partitioning import java_partition
from tests.unit.benchmarks.test_generator import FakeClock

PARTITIONS = 3


class HeldKafkaProducer:
    """send_many() hands back a future the test resolves; partitions by the Java rule."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[bytes], list[str], asyncio.Future[Any]]] = []
        self.next_offset = [0] * PARTITIONS

    async def send_many(self, values: list[bytes], keys: list[str]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.batches.append((list(values), list(keys), future))
        return future

    def ack_all(self, failed: dict[int, set[int]] | None = None) -> None:
        """Acknowledge every held batch; ``failed`` maps a batch's number to positions that fail."""
        for number, (_values, keys, future) in enumerate(self.batches):
            if future.done():
                continue
            failing = (failed or {}).get(number, set())
            partitions = array("q", [java_partition(key.encode(), PARTITIONS) for key in keys])
            offsets = array("q", [0] * len(keys))
            errors: dict[int, ShardlineError] = {}
            for position, partition in enumerate(partitions):
                if position in failing:
                    errors[position] = DeliveryError("broker said no", attempts=1, retriable=True)
                    continue
                offsets[position] = self.next_offset[partition]
                self.next_offset[partition] += 1
            future.set_result(KafkaBatchAcks("t", partitions, offsets, errors))


def _generator(
    workload: WorkloadSpec,
) -> tuple[KafkaLoadGenerator, Recorder, FakeClock, HeldKafkaProducer, dict[int, int]]:
    clock = FakeClock()
    producer = HeldKafkaProducer()
    recorder = Recorder([partition_label(p) for p in range(PARTITIONS)], 0.0)
    newest: dict[int, int] = {}
    generator = KafkaLoadGenerator(
        workload=workload,
        recorder=recorder,
        producer=producer,
        start=0.0,
        wall_origin_ns=1_000_000_000_000,
        partition_label=partition_label,
        newest_acked=newest,
        clock=clock,
    )
    return generator, recorder, clock, producer, newest


async def test_a_tick_is_one_batch_and_its_acks_give_load_latency_and_offsets() -> None:
    workload = WorkloadSpec(keys=40, skew=Skew(1.1), rate=100.0, record_size=64)
    generator, recorder, clock, producer, newest = _generator(workload)
    await generator.send_batch(0, 100)  # records due at 0.00 .. 0.99
    await generator.send_batch(100, 50)  # due at 1.00 .. 1.49
    assert len(producer.batches) == 2
    values, keys, _ = producer.batches[0]
    assert [decode_payload(v).record_id for v in values] == list(range(100))  # type: ignore[union-attr]
    clock.now = 2.5
    producer.ack_all(failed={0: {3}})
    await asyncio.sleep(0)
    assert not generator.pending
    assert recorder.total_acked == 149 and recorder.failed[1] == 0 and sum(recorder.failed.values()) == 1
    summary = recorder.ack_latency.summary_ms()
    assert summary["count"] == 149
    assert summary["max"] == pytest.approx(2500, rel=0.002)  # record 0: intended at 0.00, acked at 2.5
    # each partition's load in the second the records were due; bytes are value + key
    sizes = {}
    for batch, (values, keys, _) in enumerate(producer.batches):
        for position, (value, key) in enumerate(zip(values, keys, strict=True)):
            if batch == 0 and position == 3:
                continue
            label = partition_label(java_partition(key.encode(), PARTITIONS))
            records, nbytes = sizes.get((label, batch), (0, 0))
            sizes[label, batch] = (records + 1, nbytes + len(value) + len(key))
    per_second = recorder.load.per_second(2)
    for (label, second), (records, nbytes) in sizes.items():
        assert per_second[label]["records"][second] == records
        assert per_second[label]["bytes"][second] == nbytes
    # accepted in the second the acknowledgement arrived (2)
    assert sum(recorder.accepted_records[label][2] for label in per_second) == 149
    assert newest == {p: n - 1 for p, n in enumerate(producer.next_offset) if n}


async def test_devices_are_counted_in_the_partition_their_acks_name() -> None:
    """Hot keys per partition come from routes learned from acknowledgements; a device whose
    only message failed has no route and is left out, not put in a wrong partition."""
    workload = WorkloadSpec(keys=200, skew=Skew(1.2), rate=None, record_size=64)
    generator, recorder, _clock, producer, _ = _generator(workload)
    await generator.send_batch(0, 500)
    keys = producer.batches[0][1]
    lonely = next(p for p, key in enumerate(keys) if keys.count(key) == 1)
    producer.ack_all(failed={0: {lonely}})
    await asyncio.sleep(0)
    for p in range(PARTITIONS):
        label = partition_label(p)
        counter = recorder.load.keys(label)
        expected = {
            k for i, k in enumerate(keys) if i != lonely and java_partition(k.encode(), PARTITIONS) == p
        }
        assert {hitter.key for hitter in counter.top(1_000)} == expected
    assert all(
        keys[lonely] not in {h.key for h in recorder.load.keys(partition_label(p)).top(1_000)}
        for p in range(PARTITIONS)
    )


async def test_a_failed_batch_counts_every_record_failed() -> None:
    generator, recorder, _, producer, _ = _generator(WorkloadSpec(keys=5, rate=None, record_size=64))
    await generator.send_batch(0, 20)
    producer.batches[0][2].set_exception(DeliveryError("gone", attempts=1, retriable=False))
    await asyncio.sleep(0)
    assert recorder.failed[0] == 20 and recorder.total_acked == 0


def test_json_payloads_take_the_per_record_path() -> None:
    with pytest.raises(ValueError, match="binary"):
        _generator(WorkloadSpec(keys=5, rate=None, record_size=64, payload_format="json"))


def test_the_warm_up_message_is_no_bench_record() -> None:
    """Sent before the clock starts; the readers skip it (it counts nowhere)."""
    from benchmarks import run_msk
    from benchmarks.readback import read_batch

    assert decode_payload(run_msk._WARM_UP_VALUE) is None
    recorder = Recorder([partition_label(0)], 0.0)

    class Raw:
        data = run_msk._WARM_UP_VALUE

    read_batch(recorder, [Raw()], 0, 10**18, 0)
    assert recorder.total_consumed == 0 and recorder.e2e_latency.count == 0
