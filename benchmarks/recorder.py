"""Everything a run measures, bucketed per second of the run.

The producer loop, the ack callbacks, the consumers and the producer's metrics observer all
write here; the live display and the final result read from here.  Everything happens on one
event loop, so plain counters suffice.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from benchmarks.histogram import LatencyHistogram
from benchmarks.shardload import ShardLoadTracker
from shardline import metrics_events as events

__all__ = ["Recorder"]


def _per_second_histogram() -> LatencyHistogram:
    """One second's ack latencies, for the timeline chart: 1% precision is plenty there."""
    return LatencyHistogram(significant_figures=2)


class Recorder:
    """Per-second counters, latency histograms and per-shard load of one run."""

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
        self.ack_latency_by_second: dict[int, LatencyHistogram] = defaultdict(_per_second_histogram)
        self.load = ShardLoadTracker(shard_ids)
        self.consumed_ids: set[int] = set()
        self.duplicates = 0
        self.now = clock_start
        self.last_ack_at: float | None = None
        """Clock time of the latest acknowledgement: the end of the producing phase."""

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
        self.ack_latency_by_second[second].record(latency)

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        """The producer's MetricsObserver: throttles and retries land in the current second."""
        second = self.second(self.now)
        if name == events.THROTTLES:
            self.throttles[second] += int(value)
        elif name == events.RETRIES:
            self.retries[second] += int(value)

    # --- consumer side ----------------------------------------------------------------------

    def on_consumed(self, second: int, record_id: int, e2e_seconds: float) -> None:
        if record_id in self.consumed_ids:
            self.duplicates += 1
            return
        self.consumed_ids.add(record_id)
        self.consumed[second] += 1
        self.e2e_latency.record(e2e_seconds)

    def on_iterator_age(self, shard_id: str, second: int, millis: int) -> None:
        ages = self.iterator_age[shard_id]
        ages[second] = max(ages.get(second, 0), millis)

    # --- live view --------------------------------------------------------------------------

    def snapshot(self, now: float, duration: float) -> dict[str, Any]:
        """The figures the live progress display shows (counts and latencies, never payloads)."""
        second = self.second(now)
        summary = self.ack_latency.summary_ms()
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
