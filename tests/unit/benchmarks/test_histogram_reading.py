"""Reading a latency histogram is cheap enough to do once a second (the live progress line) and
once per second of a run (the result's timeline, built after Ctrl-C too), and its mean is exact."""

from __future__ import annotations

import random

import pytest

from benchmarks.histogram import LatencyHistogram


@pytest.mark.parametrize("count", [1, 2, 7, 1_000])
def test_the_mean_is_exact(count: int) -> None:
    rng = random.Random(count)
    samples = [rng.choice([rng.uniform(0.0001, 0.4), rng.uniform(1.0, 30.0)]) for _ in range(count)]
    histogram = LatencyHistogram()
    for seconds in samples:
        histogram.record(seconds)
    exact_mean_ms = sum(int(s * 1_000_000) for s in samples) / count / 1000.0
    assert histogram.summary_ms()["mean"] == pytest.approx(exact_mean_ms, abs=0.001)
    assert histogram.summary_ms()["count"] == count


def test_reading_never_takes_hdrh_per_value_walks(monkeypatch: pytest.MonkeyPatch) -> None:
    """hdrh's mean and single-percentile reads walk every bucket in Python (about 0.2 s for this
    histogram): reading one per second of a run made stopping a long run take minutes."""
    histogram = LatencyHistogram()
    histogram.record(0.2)

    def walk(*_: object) -> None:
        raise AssertionError("a per-value walk")

    monkeypatch.setattr(type(histogram._hist), "get_mean_value", walk)
    monkeypatch.setattr(type(histogram._hist), "get_value_at_percentile", walk)
    monkeypatch.setattr(type(histogram._hist), "get_percentile_to_value_dict", walk)
    assert histogram.summary_ms()["p50"] > 0
    assert histogram.quantiles_ms("p50", "p99")["p99"] > 0


@pytest.mark.parametrize("shared", [True, False], ids=["latencies-shared-by-a-tick", "all-distinct"])
def test_bulk_recording_equals_recording_each_value(shared: bool) -> None:
    """record_micros rounds each distinct value to its bucket once: the counts are exactly what
    hdrh's own record_value gives value by value, across magnitudes (exact below 2**11 us)."""
    rng = random.Random(7)
    pool = [rng.randint(1, 5_000_000) for _ in range(300)]
    values = [rng.choice(pool) if shared else rng.randint(1, 5_000_000) for _ in range(20_000)]
    values += [1, 2, 2047, 2048, 2049, 4095, 4096, 1 << 30]
    bulk = LatencyHistogram()
    bulk.record_micros(values)
    one_by_one = LatencyHistogram()
    for value in values:
        one_by_one._hist.record_value(value)
    assert bulk.count == len(values)
    assert bulk._hist.encode() == one_by_one._hist.encode()


def test_single_records_are_buffered_and_equal_recording_each_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """record() (the per-record paths' call) writes nothing to hdrh until the histogram is read
    or its buffer fills; what it then holds is exactly hdrh's own value-by-value recording,
    clamping included (below 1 us, above an hour), and the mean stays exact."""
    rng = random.Random(11)
    samples = [rng.uniform(0.000_001, 5.0) for _ in range(5_000)] + [0.0, -0.5, 4_000.0, 0.002_047]
    reference = LatencyHistogram()
    for seconds in samples:
        reference._hist.record_value(min(max(int(seconds * 1_000_000), 1), 3_600 * 1_000_000))
    histogram = LatencyHistogram()
    writes = 0
    record_value = histogram._hist.record_value

    def counting(value: int, count: int = 1) -> None:
        nonlocal writes
        writes += 1
        record_value(value, count)

    monkeypatch.setattr(histogram._hist, "record_value", counting)
    for seconds in samples:
        histogram.record(seconds)
    assert writes == 0  # buffered: no hdrh write per record
    assert histogram.count == len(samples)
    assert 0 < writes < len(samples)  # one write per distinct bucket, at the first read
    assert histogram._hist.encode() == reference._hist.encode()
    clamped = [min(max(int(s * 1_000_000), 1), 3_600 * 1_000_000) for s in samples]
    assert histogram.summary_ms()["mean"] == pytest.approx(sum(clamped) / len(clamped) / 1000.0, abs=0.001)
