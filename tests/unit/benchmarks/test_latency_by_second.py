"""Per-second latency histograms: exact counts whatever order the seconds arrive in, and memory
that does not grow by a full histogram (188 KB) for every second of a long run."""

from __future__ import annotations

import gc
import random
import tracemalloc
import weakref

import pytest

from benchmarks.histogram import LatencyBySecond, LatencyHistogram
from benchmarks.recorder import Recorder


def test_seconds_packed_and_reopened_count_every_value_once() -> None:
    rng = random.Random(7)
    by_second = LatencyBySecond(live=2)
    plain: dict[int, LatencyHistogram] = {}
    # late acknowledgements land in seconds already packed away, some more than once
    for second in [0, 1, 2, 3, 0, 4, 5, 1, 6, 0, 7, 3]:
        micros = [rng.randint(1_000, 3_000_000) for _ in range(rng.randint(1, 300))]
        by_second.at(second).record_micros(micros)
        plain.setdefault(second, LatencyHistogram()).record_micros(micros)
    assert len(by_second) == len(plain) == 8
    for second, expected in plain.items():
        got = by_second.get(second)
        assert got is not None
        assert got.summary_ms() == expected.summary_ms()
    assert by_second.get(8) is None
    assert 8 not in by_second and 7 in by_second and 0 in by_second
    assert {t: LatencyHistogram.from_dict(d).count for t, d in by_second.to_dicts().items()} == {
        t: h.count for t, h in plain.items()
    }


def test_merging_partials_adds_to_packed_and_live_seconds() -> None:
    by_second = LatencyBySecond(live=1)
    part = LatencyHistogram()
    part.record_micros([5_000, 6_000])
    for second in (0, 1, 2):
        by_second.at(second).record_micros([1_000])
    for second in (0, 2, 3):  # 0 packed, 2 live, 3 new
        by_second.merge(second, part.to_dict())
    counts = {t: LatencyHistogram.from_dict(d).count for t, d in by_second.to_dicts().items()}
    assert counts == {0: 3, 1: 1, 2: 3, 3: 2}


def test_a_long_run_holds_a_few_live_histograms_not_one_per_second() -> None:
    """600 seconds kept live took about 110 MB (188 KB of counters each, plus the values waiting
    to be flushed); packed, a second costs its compressed encoding."""
    recorder = Recorder(["shardId-000000000000"], clock_start=0.0)
    rng = random.Random(1)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for second in range(600):
            intended = [second + rng.random() for _ in range(100)]
            recorder.on_entries_acked(
                second, [("shardId-000000000000", range(100), second + 1.5)], [256] * 100, intended
            )
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 12 * 1024 * 1024, f"{grown / 1e6:.1f} MB for 600 seconds"
    assert recorder.ack_latency_by_second.get(599) is not None
    assert recorder.ack_latency.count == 60_000


def test_a_live_window_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LatencyBySecond(live=0)


def test_a_dropped_histogram_is_freed_without_the_cyclic_collector() -> None:
    """hdrh's histogram and encoder refer to each other; the bench runs the collector rarely."""
    gc.disable()
    try:
        histogram = LatencyHistogram()
        histogram.record_micros([1_000, 2_000])
        counters = weakref.ref(histogram._hist)
        decoded = LatencyHistogram.from_dict(histogram.to_dict())
        assert decoded.count == 2  # encoding and decoding still work through the weak link
        del histogram, decoded
        assert counters() is None
    finally:
        gc.enable()
