"""Latency histograms: HdrHistogram in microseconds, reported as the bench's quantiles.

HdrHistogram keeps a fixed relative error (3 significant digits here) at any magnitude with
constant memory, so a 20-second run and a 2-hour run cost the same to record.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

__all__ = ["QUANTILES", "LatencyHistogram"]

QUANTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9))
_HIGHEST_US = 3_600 * 1_000_000  # one hour; longer latencies are clamped


class LatencyHistogram:
    """Records latencies in seconds; reports milliseconds."""

    def __init__(self) -> None:
        self._hist = HdrHistogram(1, _HIGHEST_US, 3)

    def record(self, seconds: float) -> None:
        micros = int(seconds * 1_000_000)
        self._hist.record_value(min(max(micros, 1), _HIGHEST_US))

    def merge(self, other: LatencyHistogram) -> None:
        self._hist.add(other._hist)

    @property
    def count(self) -> int:
        return int(self._hist.get_total_count())

    def summary_ms(self) -> dict[str, float]:
        """``{"count", "p50", "p90", "p99", "p99_9", "max", "mean"}``; times in milliseconds."""
        if self.count == 0:
            return {"count": 0, **{name: 0.0 for name, _ in QUANTILES}, "max": 0.0, "mean": 0.0}
        result: dict[str, float] = {"count": self.count}
        for name, percentile in QUANTILES:
            result[name] = self._hist.get_value_at_percentile(percentile) / 1000.0
        result["max"] = self._hist.get_max_value() / 1000.0
        result["mean"] = round(self._hist.get_mean_value() / 1000.0, 3)
        return result
