"""Reading a latency histogram gives hdrh's own quantiles and an exact mean, cheaply enough to do
once a second (the live progress line) and once per second of a run (the result's timeline)."""

from __future__ import annotations

import random

import pytest

from benchmarks.histogram import QUANTILES, LatencyHistogram


@pytest.mark.parametrize("significant_figures", [2, 3])
@pytest.mark.parametrize("count", [1, 2, 7, 1_000])
def test_summary_matches_hdrh_quantiles_and_the_exact_mean(significant_figures: int, count: int) -> None:
    rng = random.Random(count)
    samples = [rng.choice([rng.uniform(0.0001, 0.4), rng.uniform(1.0, 30.0)]) for _ in range(count)]
    histogram = LatencyHistogram(significant_figures)
    for seconds in samples:
        histogram.record(seconds)

    summary = histogram.summary_ms()

    hdrh = histogram._hist
    for name, percentile in QUANTILES:
        assert summary[name] == hdrh.get_value_at_percentile(percentile) / 1000.0, name
    assert summary["max"] == hdrh.get_max_value() / 1000.0
    exact_mean_ms = sum(int(s * 1_000_000) for s in samples) / count / 1000.0
    assert summary["mean"] == pytest.approx(exact_mean_ms, abs=0.001)
    assert summary["count"] == count


def test_merging_keeps_the_mean_exact() -> None:
    first, second = LatencyHistogram(), LatencyHistogram()
    first.record(0.010)
    second.record(0.030)
    second.record(0.050)
    first.merge(second)
    assert first.summary_ms()["mean"] == pytest.approx(30.0)
    assert first.summary_ms()["count"] == 3


def test_a_per_second_histogram_is_a_tenth_of_the_size() -> None:
    assert LatencyHistogram(2)._hist.counts_len * 5 < LatencyHistogram(3)._hist.counts_len


def test_reading_never_takes_hdrh_per_value_walks(monkeypatch: pytest.MonkeyPatch) -> None:
    """hdrh's mean and single-percentile reads walk every bucket in Python (about 0.2 s for a
    3-figure histogram): reading one per second of a run made stopping a long run take minutes."""
    histogram = LatencyHistogram()
    histogram.record(0.2)

    def walk(*_: object) -> None:
        raise AssertionError("a per-value walk")

    monkeypatch.setattr(type(histogram._hist), "get_mean_value", walk)
    monkeypatch.setattr(type(histogram._hist), "get_value_at_percentile", walk)
    assert histogram.summary_ms()["p50"] > 0
