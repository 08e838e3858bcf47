"""The load generator: a pacing tick's records built, routed, counted and sent in bulk.

Per record the generator does only what cannot be shared: pack the payload header (id and
intended send time) in front of a precomputed key-and-padding tail and append it, with its
key, to the tick's columns.  Everything else happens once per tick: keys are drawn in bulk
(``random.choices`` with cumulative weights), each key's shard is looked up once and kept,
per-shard and per-device counts are taken from one ``collections.Counter`` of the tick's keys,
and the tick's records go to the producer's batch path as columns (``send_many(payloads,
keys)``: no object per record) in one call whose acknowledgements are recorded in bulk.

Devices are counted exactly, by index, in a flat array (8 bytes a device), and each shard's
hot-key counter is built from it once, when the report reads it
(:meth:`~benchmarks.shardload.ShardLoadTracker.count_keys_with`).  Feeding the shards' key
counters per tick cost 4.6 CPU-us a record at 64 shards and a million devices (64
Space-Saving summaries touched at random, nearly every key evicting another), against
under 0.1 us for the array.

Latency stays measured from each record's INTENDED send time (coordinated omission is not
hidden): a paced record *i* is due at ``start + i / rate`` whatever the client was doing; an
unbounded tick's records are due when the tick builds them.  A record is acknowledged when
the Kinesis entry (aggregate) carrying it is (:meth:`producers.tickets.BatchAcks.by_entry`),
so its send-to-ack latency is that moment minus its own intended time, whichever other
shards the tick's batch also went to and whenever they answered.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from itertools import accumulate, compress
from typing import Any

from benchmarks.hotkeys import KeyCounter
from benchmarks.recorder import Recorder
from benchmarks.workload import _HEADER, _MAGIC, WorkloadSpec, device_key, encode_payload
from shardline.events_wait import wait_until_set
from shardline.records import Record
from shardline.shardmath import ShardMap

__all__ = ["TICK_SECONDS", "LoadGenerator", "SendBatch", "drive_ticks", "key_share"]

TICK_SECONDS = 0.005
"""How often a paced schedule wakes at most: a twentieth of the producer's 100 ms linger."""

SendBatch = Callable[[int, int], Awaitable[None]]
"""``send_batch(first_record_index, count)``: build and hand ``count`` records to the producer."""

_UNROUTED = -1
_TAIL_CACHE = 65_536


def zipf_weights(keys: int, exponent: float) -> list[float]:
    return [1.0 / (rank**exponent) for rank in range(1, keys + 1)]


def key_share(keys: int, shard_map: ShardMap, shards: list[str]) -> list[int]:
    """The device indices whose key hashes to one of ``shards`` (a worker's share of the key space).

    A worker that produces only to its own shards and reads only those accounts for its
    records alone, so workers (and machines) need no coordination during a run.
    """
    wanted = set(shards)
    route = shard_map.shard_for_key
    return [index for index in range(keys) if route(device_key(index)).shard_id in wanted]


class LoadGenerator:
    """Builds and sends the workload's records a pacing tick at a time (see the module docstring).

    ``shard_map`` routes each device's key once (Kinesis); without one (Kafka, where the
    client's partitioner routes) a subclass learns each device's partition from its
    acknowledgements (:class:`benchmarks.kafka_generator.KafkaLoadGenerator`).
    ``indices`` restricts the devices to a share of the key space (default: all); their
    relative Zipf weights stay those of the whole fleet, and the share is paced at its part
    of the fleet's rate (:attr:`mass` times ``workload.rate``: :attr:`rate`).  Record ids are
    ``index * id_stride + id_offset`` so the ids of several workers never collide.
    """

    def __init__(
        self,
        *,
        workload: WorkloadSpec,
        shard_map: ShardMap | None,
        recorder: Recorder,
        producer: Any,
        start: float,
        wall_origin_ns: int,
        choose_key: Callable[[str], tuple[str, int | None]] | None = None,
        indices: list[int] | None = None,
        id_stride: int = 1,
        id_offset: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._workload = workload
        self._map = shard_map
        self._recorder = recorder
        self._producer = producer
        self._start = start
        self._wall_origin_ns = wall_origin_ns
        self._choose_key = choose_key
        self._id_stride = id_stride
        self._id_offset = id_offset
        self._clock = clock
        # Per-key tables are flat arrays (8 bytes a key for the weights, 4 for the shard), so a
        # million devices cost ~12 MB, and nothing grows with the records sent.
        exponent = workload.skew.exponent
        self._population: Sequence[int] = range(workload.keys) if indices is None else array("l", indices)
        if not self._population:
            raise ValueError("the key share is empty")
        # Uniform keys need no weights: an unweighted draw is one multiply a key, where the
        # bisect over a million cumulative weights cost 0.6 us a key (73-124 ns without).
        self._cum_weights: array[float] | None = None
        self.mass: float
        """This share's fraction of the whole fleet's traffic."""
        if exponent == 0:
            self.mass = len(self._population) / workload.keys
        else:
            cum = self._cum_weights = array(
                "d", accumulate(1.0 / (i + 1) ** exponent for i in self._population)
            )
            whole = cum[-1] if indices is None else math.fsum(zipf_weights(workload.keys, exponent))
            self.mass = cum[-1] / whole
        self._rate = workload.rate * self.mass if workload.rate else None
        self._rng = random.Random(workload.seed + id_offset)
        self._shard_ids = list(recorder.load.shard_ids)
        self._shard_index = {shard: n for n, shard in enumerate(self._shard_ids)}
        self._shard_of = array("i", [_UNROUTED]) * workload.keys
        self._device_records = array("Q", [0]) * workload.keys
        recorder.load.count_keys_with(self._key_counters)
        self._size = workload.record_size
        self._binary = workload.payload_format == "binary"
        self._pads: dict[int, bytes] = {}
        self._tails: dict[int, tuple[str, bytes, int]] = {}
        # A device's (key, tail, shard) is kept for later ticks only when devices come back
        # before the cache fills: a fleet that fits it, or a skewed draw (hot devices).  A
        # uniform draw over more devices (a million) rarely repeats one before the cache is
        # cleared, and keeping 65,536 tails (~25 MB) only churned memory: 3.3 -> 2.8 us a
        # record for the generator alone, 64 shards and a million devices.
        self._keep_tails = workload.keys <= _TAIL_CACHE or exponent != 0
        self.pending: set[asyncio.Future[Any]] = set()

    @property
    def rate(self) -> float | None:
        """Records per second this generator is paced at (``None``: unbounded)."""
        return self._rate

    # --- per key, once ------------------------------------------------------------------------

    def _route(self, index: int, key: str) -> int:
        """Device ``index``'s shard (its key is ``key``), remembered for the run."""
        assert self._map is not None, "a generator without a shard map learns routes from acks"
        shard = self._shard_number(self._map.shard_for_key(key).shard_id)
        self._shard_of[index] = shard
        return shard

    def _shard_number(self, shard_id: str) -> int:
        """The index of ``shard_id`` (a Kafka target: the recorder's series label of a
        partition) in the generator's shard table, added on first sight."""
        shard = self._shard_index.get(shard_id)
        if shard is None:
            shard = self._shard_index[shard_id] = len(self._shard_ids)
            self._shard_ids.append(shard_id)
        return shard

    def _tail(self, key: bytes) -> bytes:
        """What follows the header: the key and the padding up to the record size."""
        pad = self._pads.get(len(key))
        if pad is None:
            pad = self._pads[len(key)] = b"\0" * max(self._size - _HEADER.size - len(key), 0)
        return key + pad

    # --- per tick ------------------------------------------------------------------------------

    async def send_batch(self, first: int, count: int) -> None:
        """Build records ``first .. first + count - 1``, count them and hand them to the producer."""
        rec = self._recorder
        rate = self._rate
        start = self._start
        if rate:
            intended0 = start + first / rate
            now_intended: float | None = None
        else:
            intended0 = now_intended = self._clock()
        second = rec.second(intended0)
        rec.sent[second] += count
        if self._cum_weights is None:
            indices = self._rng.choices(self._population, k=count)
        else:
            indices = self._rng.choices(self._population, cum_weights=self._cum_weights, k=count)
        if self._choose_key is not None or not self._binary:
            await self._send_general(first, indices, second, now_intended)
            return
        # per key, cached: (key, payload tail, shard index); the per-record loop is then a
        # header pack and one list append, grouped by shard through a flat list
        tails = self._tails if self._keep_tails else {}
        if len(tails) > _TAIL_CACHE:
            tails.clear()  # bounded memory with a million keys; hot keys are back after one tick
        counts = Counter(indices)
        for index in counts:
            if index not in tails:
                key = device_key(index)
                shard = self._shard_of[index]
                if shard < 0:
                    shard = self._route(index, key)
                tails[index] = (key, self._tail(key.encode()), shard)
        pack = _HEADER.pack
        # One batch for the whole tick, in tick order: the producer routes and aggregates it,
        # and BatchAcks.by_entry times each record by its own entry's acknowledgement.  (A
        # batch per shard cost a producer call, a future and a callback per shard a tick: at
        # 64 shards and 2,000 records/s, ten one-record calls a tick.)
        datas: list[bytes] = []
        keys: list[str] = []
        stride = self._id_stride
        record_id = first * stride + self._id_offset
        if now_intended is not None:  # unbounded: the whole tick is intended now
            intended_ns = self._wall_origin_ns + int(now_intended * 1e9)
            for index in indices:
                key, tail, _ = tails[index]
                datas.append(pack(_MAGIC, record_id, intended_ns, len(key)) + tail)
                keys.append(key)
                record_id += stride
            times: float | list[float] = now_intended
        else:
            assert rate is not None
            origin = self._wall_origin_ns
            times = [start + n / rate for n in range(first, first + count)]
            for index, intended in zip(indices, times, strict=True):
                key, tail, _ = tails[index]
                datas.append(pack(_MAGIC, record_id, origin + int(intended * 1e9), len(key)) + tail)
                keys.append(key)
                record_id += stride
        self._count_load(second, counts, tails)
        await self._hand_over(datas, keys, second, [len(data) for data in datas], times, indices)

    def _count_load(
        self, second: int, counts: Counter[int], tails: dict[int, tuple[str, bytes, int]]
    ) -> None:
        """Count a tick's records per shard and per device (the offered load)."""
        device_records = self._device_records
        header = _HEADER.size
        per_shard: dict[int, list[int]] = {}
        for index, count in counts.items():
            key, tail, shard = tails[index]
            device_records[index] += count
            nbytes = count * (header + len(tail) + len(key))
            totals = per_shard.get(shard)
            if totals is None:
                per_shard[shard] = [count, nbytes]
            else:
                totals[0] += count
                totals[1] += nbytes
        add_counts = self._recorder.load.add_counts
        shard_ids = self._shard_ids
        for shard, (records, nbytes) in per_shard.items():
            add_counts(shard_ids[shard], second, records, nbytes)

    def _key_counters(self, exact_limit: int, capacity: int) -> dict[str, KeyCounter]:
        """Each shard's key counter, from the exact per-device counts (once, when read)."""
        counts = self._device_records
        shard_of = self._shard_of
        by_shard: dict[int, list[int]] = {}
        for index in compress(range(len(counts)), counts):  # the devices sent to, at C speed
            shard = shard_of[index]
            if shard == _UNROUTED:  # routed by the target, never acknowledged (Kafka)
                continue
            devices = by_shard.get(shard)
            if devices is None:
                by_shard[shard] = [index]
            else:
                devices.append(index)
        counters: dict[str, KeyCounter] = {}
        for shard, devices in by_shard.items():
            devices.sort(key=counts.__getitem__, reverse=True)
            kept = devices if len(devices) <= exact_limit else devices[:capacity]
            counters[self._shard_ids[shard]] = KeyCounter.from_ranked(
                [(device_key(index), counts[index]) for index in kept],
                total=sum(counts[index] for index in devices),
                distinct=len(devices),
                exact_limit=exact_limit,
                capacity=capacity,
            )
        return counters

    async def _send_general(
        self, first: int, indices: list[int], second: int, now_intended: float | None
    ) -> None:
        """Other key strategies and the JSON payload: the same batching, routed per record."""
        workload, rate, start = self._workload, self._rate, self._start
        choose = self._choose_key
        records: list[Record] = []
        intended_times: list[float] = []
        load = self._recorder.load
        for n, index in enumerate(indices):
            device = device_key(index)
            key, ehk = choose(device) if choose is not None else (device, None)
            intended = now_intended if now_intended is not None else start + (first + n) / (rate or 1.0)
            data = encode_payload(
                (first + n) * self._id_stride + self._id_offset,
                self._wall_origin_ns + int(intended * 1e9),
                device,
                workload.record_size,
                workload.payload_format,
            )
            assert self._map is not None, "the general path routes with the shard map"
            shard = self._map.shard_for_key(key, ehk).shard_id
            load.add(shard, second, device, len(data) + len(key))
            records.append(Record(data, key, ehk))
            intended_times.append(intended)
        times = now_intended if now_intended is not None else intended_times
        await self._hand_over(records, None, second, [len(r.data) for r in records], times, indices)

    async def _hand_over(
        self,
        values: list[bytes] | list[Record],
        keys: list[str] | None,
        second: int,
        sizes: list[int],
        times: float | list[float],
        indices: list[int],
    ) -> None:
        """A tick's records to the producer's batch path: payload and key columns, or Records.

        ``indices`` are the records' devices, by position (what a target that routes by
        itself learns routes from)."""
        future = await self._producer.send_many(values, keys)
        self.pending.add(future)
        future.add_done_callback(partial(self._on_batch_done, second, keys, sizes, times, indices))

    def _on_batch_done(
        self,
        second: int,
        keys: list[str] | None,
        sizes: list[int],
        times: float | list[float],
        indices: list[int],
        future: asyncio.Future[Any],
    ) -> None:
        self.pending.discard(future)
        rec = self._recorder
        if future.cancelled() or future.exception() is not None:
            rec.failed[second] += len(sizes)
            return
        acks = future.result()
        if acks.failed:
            rec.failed[second] += len(acks.failed)
        self._record_acks(second, acks, keys, sizes, times, indices)

    def _record_acks(
        self,
        second: int,
        acks: Any,
        keys: list[str] | None,
        sizes: list[int],
        times: float | list[float],
        indices: list[int],
    ) -> None:
        """A tick's acknowledged records, each timed by its own Kinesis entry's acknowledgement."""
        self._recorder.on_entries_acked(second, acks.by_entry(), sizes, times)


async def drive_ticks(
    *,
    rate: float | None,
    duration: float,
    start: float,
    send_batch: SendBatch,
    tick: Callable[[], None],
    on_now: Callable[[float], None] | None = None,
    burst: int = 500,
    clock: Callable[[], float] = time.monotonic,
    stop: asyncio.Event | None = None,
    interval: float = TICK_SECONDS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> int:
    """The open-loop schedule of :func:`benchmarks.pacing.drive_schedule`, a batch per tick.

    Record *i* is due at ``start + i / rate``; every record due by now goes out in one call,
    split at whole seconds of the run so each batch belongs to one second.  A paced schedule
    wakes at most once per ``interval``: waking for each record, as it did, made a tick of one
    or two records at the default 2,000 records/s, and the per-tick work (key sampling, the
    producer's batch call, its future and callback) cost ~80 CPU-us per record.  A record
    due between ticks leaves with the next one, its latency still measured from its intended
    time, so the wait is charged to the run, never hidden.  With ``rate=None`` each tick
    sends ``burst`` records and yields to the event loop.  Returns how many records were
    handed to ``send_batch``.
    """
    sent = 0
    next_tick = start + 1.0
    while True:
        now = clock()
        if on_now is not None:
            on_now(now)
        elapsed = now - start
        if stop is not None and stop.is_set():
            return sent
        if elapsed >= duration and not rate:
            return sent
        if rate:
            # every record intended before the end goes out, late ones with their lateness
            due = math.ceil(duration * rate) if elapsed >= duration else int(elapsed * rate) + 1
            while sent < due:
                boundary = _first_of_next_second(sent, rate)
                count = min(due, boundary) - sent
                await send_batch(sent, count)
                sent += count
            if elapsed >= duration:
                return sent
        else:
            await send_batch(sent, burst)
            sent += burst
        if clock() >= next_tick:
            tick()
            next_tick += 1.0
        delay = max(0.0, max(start + sent / rate, now + interval) - clock()) if rate else 0.0
        if stop is not None and delay > 0:  # Ctrl-C wakes the schedule at once
            await wait_until_set(stop, delay)
        else:
            await sleep(delay)


def _first_of_next_second(index: int, rate: float) -> int:
    """The first record index due in a later whole second of the run than record ``index``."""
    second = int(index / rate)
    boundary = math.ceil((second + 1) * rate)
    while boundary > index + 1 and int((boundary - 1) / rate) > second:
        boundary -= 1
    while int(boundary / rate) <= second:
        boundary += 1
    return boundary
