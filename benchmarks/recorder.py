"""Everything a run measures, bucketed per second of the run.

The producer loop, the ack callbacks, the consumers and the producer's metrics observer all
write here; the live display and the final result read from here.  Everything happens on one
event loop, so plain counters suffice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from benchmarks.histogram import LatencyBySecond, LatencyHistogram
from benchmarks.shardload import ShardLoadTracker
from shardline import metrics_events as events

__all__ = ["Recorder", "SeenIds"]


class SeenIds:
    """Which record ids were read: one bit per id, so memory grows by 1 bit per record sent."""

    __slots__ = ("_bits",)

    def __init__(self) -> None:
        self._bits = bytearray()

    def __contains__(self, record_id: int) -> bool:
        byte = record_id >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (record_id & 7)))

    def add(self, record_id: int) -> None:
        byte = record_id >> 3
        bits = self._bits
        if byte >= len(bits):
            bits.extend(bytes(max(byte + 1 - len(bits), len(bits))))
        bits[byte] |= 1 << (record_id & 7)

    def add_new(self, ids: list[int], values: list[int]) -> list[int]:
        """Mark ``ids`` seen; return the ``values`` of those not seen before."""
        bits = self._bits
        top = max(ids, default=-1) >> 3
        if top >= len(bits):
            bits.extend(bytes(max(top + 1 - len(bits), len(bits))))
        fresh: list[int] = []
        for record_id, value in zip(ids, values, strict=True):
            byte, mask = record_id >> 3, 1 << (record_id & 7)
            if bits[byte] & mask:
                continue
            bits[byte] |= mask
            fresh.append(value)
        return fresh


class Recorder:
    """Per-second counters, latency histograms and per-shard load of one run."""

    shardline_events = frozenset({events.THROTTLES, events.RETRIES})
    """The producer events :meth:`on_event` takes (:func:`shardline.metrics.takes_event`): the
    producer then skips its per-entry latency and per-shard counts, which the recorder takes
    from the acknowledgements themselves."""

    def __init__(self, shard_ids: list[str], clock_start: float) -> None:
        self.start = clock_start
        self.sent: dict[int, int] = defaultdict(int)
        self.acked: dict[int, int] = defaultdict(int)
        # acknowledgements by the second they *arrived* (``acked`` is by the second the record
        # was due): the live rate must not miss the acks of a second that arrive after it ends
        self.acked_by_arrival: dict[int, int] = defaultdict(int)
        self.acked_bytes: dict[int, int] = defaultdict(int)
        self.failed: dict[int, int] = defaultdict(int)
        self.consumed: dict[int, int] = defaultdict(int)
        self.throttles: dict[int, int] = defaultdict(int)
        self.retries: dict[int, int] = defaultdict(int)
        self.iterator_age: dict[str, dict[int, int]] = defaultdict(dict)
        self.ack_latency = LatencyHistogram()
        self.e2e_latency = LatencyHistogram()
        self.ack_latency_by_second = LatencyBySecond()
        self.load = ShardLoadTracker(shard_ids)
        self.consumed_ids = SeenIds()
        self.e2e_by_reader: dict[str, LatencyHistogram] = {}
        """With ``--consumer both``: end-to-end latency per reader kind (polling, efo)."""
        self._seen_by_reader: dict[str, SeenIds] = {}
        self.accepted_records: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.accepted_bytes: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        """Per shard, per second of acknowledgement: what the stream took (accepted load)."""
        self.duplicates = 0
        self.now = clock_start
        self.last_ack_at: float | None = None
        """Clock time of the latest acknowledgement: the end of the producing phase."""

    def restart(self, clock_start: float) -> None:
        """Move the run's start (second 0) to ``clock_start``: the run waited for its readers."""
        self.start = clock_start
        self.now = clock_start

    def set_now(self, now: float) -> None:
        """Where the producer loop is; the observer's throttles and retries land in this second."""
        self.now = now

    def second(self, now: float) -> int:
        return max(int(now - self.start), 0)

    # --- producer side ----------------------------------------------------------------------

    def on_ack(self, second: int, size: int, latency: float, now: float | None = None) -> None:
        self.last_ack_at = now if now is not None else self.start + second + 1
        self.acked[second] += 1
        self.acked_by_arrival[self.second(self.last_ack_at)] += 1
        self.acked_bytes[second] += size
        self.ack_latency.record(latency)
        self.ack_latency_by_second.at(second).record(latency)

    def on_entries_acked(
        self,
        second: int,
        entries: Iterable[tuple[str, Sequence[int], float]],
        sizes: Sequence[int],
        intended: float | Sequence[float],
    ) -> None:
        """A batch's records acknowledged, entry by entry: ``(shard, positions, acknowledged at)``.

        ``sizes`` and ``intended`` (one time for all, or one each) are by position in the
        batch.  Each record's latency runs from its intended time to its own entry's
        acknowledgement, and each shard is credited what it took in the second it took it,
        however many shards the batch spanned.
        """
        size = 0
        # Records of one response share its arrival time: gather their positions per time and
        # record each time's latencies in one pass (a histogram write is ~1 us; at 64 shards
        # a tick's records arrive in as many entries as records, but in a few responses).
        by_time: dict[float, list[int]] = {}
        scalar: float | None = intended if isinstance(intended, float) else None
        times: Sequence[float] = () if isinstance(intended, float) else intended
        start = self.start
        accepted_records, accepted_bytes = self.accepted_records, self.accepted_bytes
        last_time: float | None = None
        ack_second = 0
        held: list[int] = []
        for shard_id, positions, acked_at in entries:
            count = len(positions)
            if count == 1:
                nbytes = sizes[positions[0]]
            elif count:
                nbytes = sum([sizes[p] for p in positions])
            else:
                continue
            if acked_at != last_time:  # entries of one response come together
                last_time = acked_at
                ack_second = max(int(acked_at - start), 0)  # self.second(), inline
                held = by_time.setdefault(acked_at, [])
            held += positions
            accepted_records[shard_id][ack_second] += count
            accepted_bytes[shard_id][ack_second] += nbytes
            size += nbytes
        if not by_time:
            return
        by_arrival = self.acked_by_arrival
        second_of = self.second
        latest = max(by_time)
        by_second = self.ack_latency_by_second.at(second)
        acked = 0
        micros: list[int] = []
        for acked_at, arrived in by_time.items():
            count = len(arrived)
            acked += count
            by_arrival[second_of(acked_at)] += count
            if scalar is not None:
                self.ack_latency.record_n(acked_at - scalar, count)
                by_second.record_n(acked_at - scalar, count)
            else:
                micros += [int((acked_at - times[p]) * 1_000_000) for p in arrived]
        last = self.last_ack_at
        self.last_ack_at = latest if last is None else max(last, latest)
        self.acked[second] += acked
        self.acked_bytes[second] += size
        if micros:
            self.ack_latency.record_micros(micros)
            by_second.record_micros(micros)

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        """The producer's MetricsObserver: throttles and retries land in the current second.

        Every other event returns at once (the producer does not report the per-entry and
        per-shard ones to it at all: :attr:`shardline_events`)."""
        if name == events.THROTTLES:
            self.throttles[self.second(self.now)] += int(value)
        elif name == events.RETRIES:
            self.retries[self.second(self.now)] += int(value)

    # --- consumer side ----------------------------------------------------------------------

    def on_consumed(self, second: int, record_id: int, e2e_seconds: float) -> None:
        if record_id in self.consumed_ids:
            self.duplicates += 1
            return
        self.consumed_ids.add(record_id)
        self.consumed[second] += 1
        self.e2e_latency.record(e2e_seconds)

    def on_consumed_many(self, second: int, ids: list[int], e2e_micros: list[int]) -> None:
        """A reader's batch: record ids and end-to-end latencies, deduplicated by id."""
        fresh = self.consumed_ids.add_new(ids, e2e_micros)
        self.duplicates += len(ids) - len(fresh)
        if fresh:
            self.consumed[second] += len(fresh)
            self.e2e_latency.record_micros(fresh)

    def expect_readers(self, kinds: list[str]) -> None:
        """Reader kinds that each read every shard: the drain waits for the slowest of them."""
        for kind in kinds:
            self._seen_by_reader.setdefault(kind, SeenIds())
            self.e2e_by_reader.setdefault(kind, LatencyHistogram())

    @property
    def read_by_slowest(self) -> int:
        """Records read by the slowest reader kind (the consumed count with one kind)."""
        if not self.e2e_by_reader:
            return self.total_consumed
        return min(histogram.count for histogram in self.e2e_by_reader.values())

    def on_read_by(self, reader: str, ids: list[int], e2e_micros: list[int]) -> None:
        """One reader kind's view of a batch, deduplicated per kind (``--consumer both``)."""
        seen = self._seen_by_reader.get(reader)
        if seen is None:
            seen = self._seen_by_reader[reader] = SeenIds()
            self.e2e_by_reader[reader] = LatencyHistogram()
        fresh = seen.add_new(ids, e2e_micros)
        if fresh:
            self.e2e_by_reader[reader].record_micros(fresh)

    def on_iterator_age(self, shard_id: str, second: int, millis: int) -> None:
        ages = self.iterator_age[shard_id]
        ages[second] = max(ages.get(second, 0), millis)

    # --- live view --------------------------------------------------------------------------

    def snapshot(self, now: float, duration: float) -> dict[str, Any]:
        """The figures the live progress display shows (counts and latencies, never payloads)."""
        second = self.second(now)
        summary = self.ack_latency.quantiles_ms("p50", "p99")
        ages = [ages.get(second - 1, 0) for ages in self.iterator_age.values()]
        return {
            "elapsed": now - self.start,
            "duration": duration,
            "sent": self.total_sent,
            "acked": self.total_acked,
            "rate": self._arrival_rate(second),
            "consumed": self.total_consumed,
            "throttles": sum(self.throttles.values()),
            "retries": sum(self.retries.values()),
            "p50_ms": summary["p50"],
            "p99_ms": summary["p99"],
            "iterator_age_ms": max(ages, default=0),
        }

    def _arrival_rate(self, second: int, window: int = 3) -> float:
        """Acknowledgements per second over the last ``window`` complete seconds, by arrival."""
        first = max(0, second - window)
        seconds = second - first
        if seconds <= 0:
            return 0.0
        return sum(self.acked_by_arrival.get(t, 0) for t in range(first, second)) / seconds

    # --- totals -----------------------------------------------------------------------------

    @staticmethod
    def series(counts: dict[int, int], seconds: int) -> list[int]:
        return [counts.get(t, 0) for t in range(seconds)]

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())

    @property
    def total_acked(self) -> int:
        return sum(self.acked.values())

    @property
    def total_consumed(self) -> int:
        return sum(self.consumed.values())
