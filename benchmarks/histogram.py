"""Latency histograms: HdrHistogram in microseconds, reported as the bench's quantiles.

HdrHistogram keeps a fixed relative error (3 significant digits here) at any magnitude with
constant memory, so a 20-second run and a 2-hour run cost the same to record.  Reading it must
be cheap too (the live progress line reads one every second, and a result reads one per second
of the run): the quantiles come from one pass over the buckets and the mean from a running sum,
never from hdrh's per-value iterator, which costs about as much as a whole second of the run.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

__all__ = ["QUANTILES", "LatencyHistogram"]

QUANTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9))
_HIGHEST_US = 3_600 * 1_000_000  # one hour; longer latencies are clamped


class LatencyHistogram:
    """Records latencies in seconds; reports milliseconds.

    ``significant_figures`` trades precision for size and reading time: 3 (0.1%) for a run's
    overall latencies, 2 (1%, a tenth of the memory and of the reading time) for the
    per-second series a chart draws.
    """

    def __init__(self, significant_figures: int = 3) -> None:
        self._hist = HdrHistogram(1, _HIGHEST_US, significant_figures)
        self._sum_us = 0  # exact, for the mean

    def record(self, seconds: float) -> None:
        micros = min(max(int(seconds * 1_000_000), 1), _HIGHEST_US)
        self._hist.record_value(micros)
        self._sum_us += micros

    def merge(self, other: LatencyHistogram) -> None:
        self._hist.add(other._hist)
        self._sum_us += other._sum_us

    @property
    def count(self) -> int:
        return int(self._hist.get_total_count())

    def summary_ms(self) -> dict[str, float]:
        """``{"count", "p50", "p90", "p99", "p99_9", "max", "mean"}``; times in milliseconds."""
        if self.count == 0:
            return {"count": 0, **{name: 0.0 for name, _ in QUANTILES}, "max": 0.0, "mean": 0.0}
        count = self.count
        hist = self._hist
        cumulative = list(accumulate(hist.counts[: hist.counts_len]))  # one C-speed pass
        result: dict[str, float] = {"count": count}
        for name, percentile in QUANTILES:
            # hdrh's own rule: the first bucket whose running count reaches the target count
            target = hist.get_target_count_at_percentile(percentile)
            index = bisect_left(cumulative, target)
            result[name] = hist.get_highest_equivalent_value(hist.get_value_from_index(index)) / 1000.0
        result["max"] = self._hist.get_max_value() / 1000.0
        result["mean"] = round(self._sum_us / count / 1000.0, 3)
        return result
