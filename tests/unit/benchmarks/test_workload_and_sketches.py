"""Workload generation, histograms and hot-key counting."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from benchmarks.histogram import LatencyHistogram
from benchmarks.hotkeys import KeyCounter
from benchmarks.result import load_schema
from benchmarks.workload import KeySampler, Skew, WorkloadSpec, decode_payload, device_key, encode_payload
from shardline.errors import ConfigurationError


@pytest.mark.parametrize("fmt", ["binary", "json"])
def test_payload_round_trip_and_exact_size(fmt: str) -> None:
    data = encode_payload(42, 1_700_000_000_000_000_000, "device-000007", 300, fmt)  # type: ignore[arg-type]
    assert len(data) == 300
    payload = decode_payload(data)
    assert payload is not None
    assert (payload.record_id, payload.intended_ns, payload.device) == (
        42,
        1_700_000_000_000_000_000,
        "device-000007",
    )


def test_foreign_records_are_not_decoded() -> None:
    assert decode_payload(b"hello") is None
    assert decode_payload(b'{"no": "fields"}') is None


def test_zipf_skew_makes_the_first_device_hottest() -> None:
    sampler = KeySampler(1000, Skew(1.2), seed=5)
    counts = Counter(sampler() for _ in range(20_000))
    (top, top_count), (_, second_count) = counts.most_common(2)
    assert top == "device-000000"
    assert top_count > 1.8 * second_count  # rank 1 vs rank 2 under s=1.2 is 2**1.2 ~ 2.3


def test_uniform_skew_is_flat() -> None:
    sampler = KeySampler(10, Skew.parse("uniform"), seed=5)
    counts = Counter(sampler() for _ in range(20_000))
    assert max(counts.values()) < 1.2 * min(counts.values())


@pytest.mark.parametrize(
    "text", ["zipf", "zipf:-1", "pareto:1", "zipf:x", "zipf:nan", "zipf:inf", "zipf:0.00001", "zipf:1e7"]
)
def test_bad_skew_is_refused(text: str) -> None:
    with pytest.raises(ConfigurationError):
        Skew.parse(text)


@pytest.mark.parametrize(
    "text", ["uniform", "zipf:0.0001", "zipf:0.00012345", "zipf:1.1", "zipf:999.9999", "zipf:1000"]
)
def test_an_accepted_skew_is_stated_as_the_result_schema_allows(text: str) -> None:
    """A skew the result could not state failed the run at its end, when the result was checked."""
    stated = str(Skew.parse(text))
    pattern = load_schema()["properties"]["config"]["properties"]["skew"]["pattern"]
    assert re.fullmatch(pattern, stated), stated
    assert Skew.parse(stated).exponent == pytest.approx(Skew.parse(text).exponent, rel=1e-5)


def test_workload_validation() -> None:
    with pytest.raises(ConfigurationError):
        WorkloadSpec(record_size=4)
    with pytest.raises(ConfigurationError):
        WorkloadSpec(rate=0)


def test_histogram_quantiles_in_milliseconds() -> None:
    histogram = LatencyHistogram()
    for ms in range(1, 1001):
        histogram.record(ms / 1000)
    summary = histogram.summary_ms()
    assert summary["count"] == 1000
    assert summary["p50"] == pytest.approx(500, rel=0.01)
    assert summary["p99"] == pytest.approx(990, rel=0.01)
    assert summary["max"] == pytest.approx(1000, rel=0.01)
    assert LatencyHistogram().summary_ms()["p99"] == 0.0


def test_key_counter_is_exact_for_small_key_spaces() -> None:
    counter = KeyCounter(exact_limit=100)
    for n in range(50):
        counter.add(f"k{n}", n + 1)
    assert counter.exact
    assert [(h.key, h.count, h.error) for h in counter.top(2)] == [("k49", 50, 0), ("k48", 49, 0)]


def test_space_saving_keeps_heavy_hitters_in_a_large_key_space() -> None:
    counter = KeyCounter(exact_limit=100, capacity=50)
    for n in range(20_000):
        counter.add("hot" if n % 4 == 0 else f"cold-{n}")
    assert not counter.exact
    top = counter.top(1)[0]
    assert top.key == "hot"
    assert 5000 <= top.count <= 5000 + top.error


@pytest.mark.parametrize("index", [0, 7, 42, 99_999, 999_999, 1_000_000, 12_345_678])
def test_device_keys_are_the_index_zero_padded_to_six_digits(index: int) -> None:
    assert device_key(index) == f"device-{index:06d}"
