"""The batch load generator on a fake producer and a fake clock: what it sends and how it measures."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from benchmarks.generator import LoadGenerator, SendBatch, drive_ticks, key_share
from benchmarks.readback import read_batch
from benchmarks.recorder import Recorder
from benchmarks.shardload import ShardLoadTracker
from benchmarks.workload import Skew, WorkloadSpec, decode_payload, device_key
from producers.tickets import BatchAcks
from shardline.errors import ThrottledError
from shardline.records import Record
from tests.unit.benchmarks.conftest import even_shard_map


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class HeldProducer:
    """send_many() hands back a future the test resolves when it chooses (a stalled target).

    Acknowledging a batch writes one entry per shard, acknowledged at the fake clock's time,
    as the real producer's :meth:`~producers.tickets.BatchAcks.by_entry` reports them.
    """

    def __init__(self, clock: FakeClock, shards: int = 4) -> None:
        self.clock = clock
        self.shard_map = even_shard_map(shards)
        self.batches: list[tuple[list[Record], asyncio.Future[Any]]] = []

    async def send_many(self, values: list[Any], keys: list[str] | None = None) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        records = list(values) if keys is None else [Record(v, k) for v, k in zip(values, keys, strict=True)]
        self.batches.append((records, future))
        return future

    def ack_all(self, failed: dict[int, Exception] | None = None, at: dict[str, float] | None = None) -> None:
        """Acknowledge every held record, each shard's entry at ``at[shard]`` (default: the
        clock's now); ``failed`` positions fail instead."""
        for records, future in self.batches:
            if future.done():
                continue
            by_shard: dict[str, list[int]] = {}
            for position, record in enumerate(records):
                if position not in (failed or {}):
                    shard = self.shard_map.shard_for_key(record.partition_key or "").shard_id
                    by_shard.setdefault(shard, []).append(position)
            times = at or {}
            runs = [(p, 0, shard, "1", times.get(shard, self.clock.now)) for shard, p in by_shard.items()]
            future.set_result(BatchAcks(len(records), runs, dict(failed or {})))  # type: ignore[arg-type]


def _generator(
    workload: WorkloadSpec, shards: int = 4, **kwargs: Any
) -> tuple[LoadGenerator, Recorder, FakeClock, HeldProducer]:
    """A generator over ``shards`` shards sending to a held producer, on a fake clock at 0."""
    clock = FakeClock()
    producer = HeldProducer(clock, shards)
    shard_map = even_shard_map(shards)
    shard_ids = kwargs.pop("shard_ids", [s.shard_id for s in shard_map.shards])
    recorder = Recorder(shard_ids, 0.0)
    exact_key_limit = kwargs.pop("exact_key_limit", None)
    if exact_key_limit is not None:
        recorder.load = ShardLoadTracker(shard_ids, exact_key_limit=exact_key_limit)
    generator = LoadGenerator(
        workload=workload,
        shard_map=shard_map,
        recorder=recorder,
        producer=producer,
        start=0.0,
        wall_origin_ns=1_000_000_000_000,
        clock=clock,
        **kwargs,
    )
    return generator, recorder, clock, producer


async def test_a_stalled_ack_counts_from_each_records_intended_send_time() -> None:
    """No coordinated omission: records due while the target stalls carry the whole stall."""
    workload = WorkloadSpec(keys=50, rate=100.0, duration=1.0, record_size=64)
    generator, recorder, clock, producer = _generator(workload)
    # the client was stalled for the whole first second: records 0..99 (due at 0.00 .. 0.99)
    # go out together at t=1.0 and are acknowledged at t=3.0
    await generator.send_batch(0, 100)
    clock.now = 3.0
    producer.ack_all()
    await asyncio.sleep(0)
    summary = recorder.ack_latency.summary_ms()
    assert summary["count"] == 100
    assert summary["max"] == pytest.approx(3000, rel=0.002)  # record 0: intended at 0.00
    assert summary["p50"] == pytest.approx(2510, rel=0.01)  # the middle record: intended at ~0.49
    assert recorder.ack_latency.summary_ms()["p50"] > 2000  # not the ~0 a send-time clock would show
    assert recorder.total_acked == 100 and recorder.sent[0] == 100


async def test_unbounded_tick_is_intended_when_built_and_acks_are_bulk_recorded() -> None:
    generator, recorder, clock, producer = _generator(WorkloadSpec(keys=10, rate=None, record_size=64))
    clock.now = 0.25
    await generator.send_batch(0, 500)
    clock.now = 0.75
    producer.ack_all()
    await asyncio.sleep(0)
    summary = recorder.ack_latency.summary_ms()
    assert summary["count"] == 500
    assert summary["p50"] == pytest.approx(500, rel=0.002) and summary["max"] == pytest.approx(500, rel=0.002)


async def test_records_carry_ids_intended_times_and_their_shards_counts() -> None:
    workload = WorkloadSpec(keys=300, skew=Skew(1.1), rate=1000.0, record_size=80)
    generator, recorder, _, producer = _generator(workload, id_stride=3, id_offset=2)
    await generator.send_batch(10, 200)
    shard_map = even_shard_map(4)
    seen: list[int] = []
    assert len(producer.batches) == 1  # one producer call for the tick, whatever its shards
    for records, _ in producer.batches:
        assert len({shard_map.shard_for_key(r.partition_key or "").shard_id for r in records}) == 4
        for record in records:
            payload = decode_payload(record.data)
            assert payload is not None and payload.device == record.partition_key
            assert len(record.data) == 80
            index = (payload.record_id - 2) // 3
            assert payload.record_id % 3 == 2
            assert payload.intended_ns == 1_000_000_000_000 + int((index / 1000.0) * 1e9)
            seen.append(index)
    assert sorted(seen) == list(range(10, 210))
    per_shard = recorder.load.per_second(1)
    assert sum(s["records"][0] for s in per_shard.values()) == 200
    assert sum(s["bytes"][0] for s in per_shard.values()) == sum(
        len(r.data) + len(r.partition_key or "") for records, _ in producer.batches for r in records
    )
    assert sum(recorder.load.keys(s).total for s in recorder.load.shard_ids) == 200


async def test_failed_records_of_a_batch_are_counted_failed_not_acked() -> None:
    generator, recorder, _, producer = _generator(WorkloadSpec(keys=1, rate=100.0, record_size=64))
    await generator.send_batch(0, 10)
    producer.ack_all({0: ThrottledError("x"), 3: ThrottledError("y")})
    await asyncio.sleep(0)
    assert recorder.failed[0] == 2
    assert recorder.total_acked == 8
    assert recorder.ack_latency.count == 8
    assert sum(sum(series.values()) for series in recorder.accepted_records.values()) == 8


async def test_each_record_is_timed_by_its_own_entrys_acknowledgement() -> None:
    """One batch for the tick, but a shard answering late delays only its own records."""
    generator, recorder, clock, producer = _generator(WorkloadSpec(keys=200, rate=None, record_size=64))
    clock.now = 1.0
    await generator.send_batch(0, 400)
    records, _ = producer.batches[0]
    shard_map = producer.shard_map
    slow = shard_map.shards[0].shard_id
    on_slow = sum(shard_map.shard_for_key(r.partition_key or "").shard_id == slow for r in records)
    assert 0 < on_slow < 400
    producer.ack_all(at={shard.shard_id: 1.2 for shard in shard_map.shards} | {slow: 3.0})
    await asyncio.sleep(0)
    latency = recorder.ack_latency.summary_ms()
    assert latency["count"] == 400
    assert latency["max"] == pytest.approx(2000, rel=0.002)  # the slow shard's records
    assert latency["p50"] == pytest.approx(200, rel=0.002)  # everyone else's, not the batch's last
    accepted = {shard: dict(series) for shard, series in recorder.accepted_records.items()}
    assert accepted[slow] == {3: on_slow}  # credited in the second its shard took them
    assert (
        sum(n for shard, series in accepted.items() if shard != slow for n in series.values())
        == 400 - on_slow
    )
    assert all(set(series) == {1} for shard, series in accepted.items() if shard != slow)


def test_key_share_partitions_the_key_space_by_shard() -> None:
    shard_map = even_shard_map(4)
    shard_ids = [s.shard_id for s in shard_map.shards]
    shares = [key_share(1000, shard_map, shard_ids[w::2]) for w in range(2)]
    assert sorted(shares[0] + shares[1]) == list(range(1000))


async def test_drive_ticks_sends_every_due_record_once_split_at_whole_seconds() -> None:
    now = 0.0

    def clock() -> float:
        nonlocal now
        now += 0.013
        return now

    calls, send_batch = _recording_batches()

    sent = await drive_ticks(
        rate=333.0, duration=2.5, start=0.0, send_batch=send_batch, tick=lambda: None, clock=clock
    )
    indices = [i for first, count in calls for i in range(first, first + count)]
    assert indices == list(range(sent))
    assert 800 <= sent <= 834
    for first, count in calls:  # no batch straddles a second of the schedule
        assert int(first / 333.0) == int((first + count - 1) / 333.0)


async def test_a_late_wake_at_the_end_still_sends_every_record_of_the_plan() -> None:
    times = iter([0.0, 0.5, 3.7, 3.7, 3.7])  # the loop oversleeps past the end (a loaded machine)
    calls, send_batch = _recording_batches()

    sent = await drive_ticks(
        rate=100.0,
        duration=3.0,
        start=0.0,
        send_batch=send_batch,
        tick=lambda: None,
        clock=lambda: next(times),
    )
    assert sent == 300 == sum(count for _, count in calls)
    assert calls[-1] == (200, 100)  # the last second's records, sent late


def test_read_back_dedupes_and_measures_from_the_intended_time() -> None:
    recorder = Recorder(["s"], 0.0)

    class Read:
        def __init__(self, data: bytes) -> None:
            self.data = data

    from benchmarks.workload import encode_payload

    records = [Read(encode_payload(i, 5_000_000_000, "d", 64, "binary")) for i in (1, 2, 2)]
    records.append(Read(encode_payload(9, 1_000, "d", 64, "binary")))  # before the run: skipped
    records.append(Read(b"not a bench record"))
    read_batch(recorder, records, 0, now_ns=5_250_000_000, floor_ns=1_000_000_000)
    assert recorder.total_consumed == 2 and recorder.duplicates == 1
    assert recorder.e2e_latency.summary_ms()["p50"] == pytest.approx(250, rel=0.002)


async def test_batch_acks_feed_the_live_rate_by_arrival_second() -> None:
    generator, recorder, clock, producer = _generator(WorkloadSpec(keys=20, rate=None, record_size=64))
    await generator.send_batch(0, 300)
    clock.now = 1.5  # acknowledged in the run's second 1
    producer.ack_all()
    await asyncio.sleep(0)
    assert recorder.snapshot(2.2, 10.0)["rate"] == pytest.approx(300 / 2)  # seconds 0 and 1 complete


async def test_a_paced_schedule_wakes_once_per_interval_not_once_per_record() -> None:
    """At 2,000 records/s the schedule woke every half millisecond for one record; a tick's own
    work then cost more than the records it sent."""
    now = 0.0
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        nonlocal now
        sleeps.append(seconds)
        now += seconds + 0.0001  # each wake is a little late, as on a busy loop

    calls, send_batch = _recording_batches()

    sent = await drive_ticks(
        rate=2000.0,
        duration=2.0,
        start=0.0,
        send_batch=send_batch,
        tick=lambda: None,
        clock=lambda: now,
        interval=0.005,
        sleep=sleep,
    )
    assert sent == 4000 == sum(count for _, count in calls)
    assert [i for first, count in calls for i in range(first, first + count)] == list(range(4000))
    assert all(seconds >= 0.005 - 1e-9 for seconds in sleeps[:-1])
    assert len(calls) <= 2.0 / 0.005 + 2  # a batch per tick (one more where a second splits it)
    assert max(count for _, count in calls) <= 12  # ten records due per tick, plus a late wake's


def _recording_batches() -> tuple[list[tuple[int, int]], SendBatch]:
    """A ``send_batch`` that records each ``(first, count)`` it is handed."""
    calls: list[tuple[int, int]] = []

    async def send_batch(first: int, count: int) -> None:
        calls.append((first, count))

    return calls, send_batch


async def test_uniform_keys_are_drawn_flat_from_the_share_without_weights() -> None:
    share = list(range(0, 40, 2))  # half the fleet's devices
    workload = WorkloadSpec(keys=40, skew=Skew.parse("uniform"), rate=None, record_size=64)
    generator, _, _, producer = _generator(workload, indices=share)
    assert generator.mass == 0.5
    await generator.send_batch(0, 20_000)
    ((records, _),) = producer.batches
    payloads = [decode_payload(r.data) for r in records]
    drawn = Counter(p.device for p in payloads if p is not None)
    assert sum(drawn.values()) == 20_000
    assert set(drawn) == {device_key(i) for i in share}
    assert max(drawn.values()) < 1.2 * min(drawn.values())  # ~1,000 each


async def test_a_key_share_is_paced_at_its_part_of_the_fleets_rate() -> None:
    """A worker owning the two heaviest of ten Zipf devices offers their share of the rate,
    and its records are due at that rate."""
    workload = WorkloadSpec(keys=10, skew=Skew(1.1), rate=1000.0, record_size=64)
    generator, _, _, producer = _generator(workload, indices=[0, 1])
    weights = [1 / rank**1.1 for rank in range(1, 11)]
    assert generator.mass == pytest.approx((weights[0] + weights[1]) / sum(weights))
    assert generator.rate == pytest.approx(1000.0 * generator.mass)
    assert generator.rate is not None
    await generator.send_batch(0, 10)
    ((records, _),) = producer.batches
    due = [payload.intended_ns for payload in map(decode_payload, (r.data for r in records)) if payload]
    assert due == [1_000_000_000_000 + int((n / generator.rate) * 1e9) for n in range(10)]


@pytest.mark.parametrize("exact_limit", [1_000_000, 50])
async def test_devices_are_counted_exactly_per_shard_and_summarised_past_the_shards_exact_share(
    exact_limit: int,
) -> None:
    """The generator counts devices in a flat array; the shards' key counters, built from it
    when read, equal a count of what the producer was handed, and past a shard's exact share
    keep its largest counts, exact, marked inexact."""
    workload = WorkloadSpec(keys=5_000, skew=Skew(1.1), rate=None, record_size=64)
    generator, recorder, _, producer = _generator(workload, exact_key_limit=exact_limit)
    shard_map = even_shard_map(4)
    for first in range(0, 6_000, 500):
        await generator.send_batch(first, 500)
    sent: dict[str, Counter[str]] = {}
    for records, _ in producer.batches:
        for record in records:
            key = record.partition_key or ""
            sent.setdefault(shard_map.shard_for_key(key).shard_id, Counter())[key] += 1
    for shard, keys in sent.items():
        counter = recorder.load.keys(shard)
        assert counter.total == sum(keys.values())
        if exact_limit > len(keys):
            assert counter.exact and {h.key: h.count for h in counter.top(len(keys))} == dict(keys)
        else:
            assert not counter.exact
            top = counter.top(10)
            assert [h.count for h in top] == [count for _, count in keys.most_common(10)]
            assert all(keys[h.key] == h.count and h.error == 0 for h in top)
    # the per-second series still count every record, per shard
    per_shard = recorder.load.per_second(1)
    assert {s: v["records"][0] for s, v in per_shard.items() if v["records"][0]} == {
        s: sum(keys.values()) for s, keys in sent.items()
    }
    assert recorder.load.to_dict()[next(iter(sent))]["keys"]["total"] > 0  # partials carry them


@pytest.mark.parametrize(
    ("keys", "skew", "kept"), [(70_000, "uniform", False), (70_000, "zipf:1.1", True), (100, "uniform", True)]
)
async def test_device_tails_are_kept_across_ticks_only_where_devices_come_back(
    keys: int, skew: str, kept: bool
) -> None:
    """A uniform draw over a fleet larger than the tail cache keeps no per-device tails between
    ticks (a million devices would churn ~25 MB for next to no hits); a small fleet or a
    skewed draw keeps them.  Either way each record is its device's, at the record size."""
    workload = WorkloadSpec(keys=keys, skew=Skew.parse(skew), rate=None, record_size=96)
    generator, _, _, producer = _generator(workload)
    for first in range(0, 3_000, 500):
        await generator.send_batch(first, 500)
    assert (len(generator._tails) > 0) is kept
    records = [record for batch, _ in producer.batches for record in batch]
    assert len(records) == 3_000
    for record in records:
        payload = decode_payload(record.data)
        assert payload is not None and payload.device == record.partition_key
        assert len(record.data) == 96
