"""The EMF exporter writes documents CloudWatch accepts and aggregates by kind."""

from __future__ import annotations

import io
import json
import math
import random

from shardline.exporters import EmfExporter, MetricKind, cloudwatch_name, spec_for
from shardline.exporters.emf import Histogram


def _documents(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_counters_are_summed_per_dimension_set() -> None:
    out = io.StringIO()
    exporter = EmfExporter(stream=out, clock=lambda: 1_700_000_000.0)
    exporter.on_event("records_read", 10, stream="s", shard="shardId-0")
    exporter.on_event("records_read", 5, stream="s", shard="shardId-0")
    exporter.on_event("records_read", 7, stream="s", shard="shardId-1")
    assert exporter.flush() == 2
    docs = {doc["Shard"]: doc for doc in _documents(out)}
    assert docs["shardId-0"]["RecordsRead"] == 15
    assert docs["shardId-1"]["RecordsRead"] == 7
    meta = docs["shardId-0"]["_aws"]
    assert meta["Timestamp"] == 1_700_000_000_000  # type: ignore[index]
    directive = meta["CloudWatchMetrics"][0]  # type: ignore[index]
    assert directive["Namespace"] == "Shardline"
    assert directive["Dimensions"] == [["Stream", "Shard"], ["Stream"]]
    assert directive["Metrics"] == [{"Name": "RecordsRead", "Unit": "Count"}]


def test_iterator_age_is_a_gauge_in_milliseconds_named_as_aws_does() -> None:
    out = io.StringIO()
    exporter = EmfExporter(stream=out)
    for value in (10, 300, 20):
        exporter.on_event("millis_behind_latest", value, stream="s", shard="a")
    exporter.flush()
    (doc,) = _documents(out)
    age = doc["IteratorAgeMilliseconds"]
    assert isinstance(age, dict)
    assert (age["Min"], age["Max"], age["Count"], age["Sum"]) == (10.0, 300.0, 3, 330.0)
    assert sum(age["Counts"]) == 3
    for exact, reported in zip((10.0, 20.0, 300.0), age["Values"], strict=True):
        assert abs(reported - exact) <= 0.01 * exact
    assert doc["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [  # type: ignore[index]
        {"Name": "IteratorAgeMilliseconds", "Unit": "Milliseconds"}
    ]


def _percentile(values: list[float], counts: list[int], fraction: float) -> float:
    """The percentile CloudWatch would read off a Values/Counts distribution."""
    wanted = fraction * sum(counts)
    seen = 0
    for value, count in zip(values, counts, strict=True):
        seen += count
        if seen >= wanted:
            return value
    return values[-1]


def test_distributions_are_unbiased_bounded_histograms() -> None:
    """Latencies spread over six decades: percentiles read from the document stay within the
    buckets' relative width of the exact ones (keeping the 100 largest samples read p50 as
    about p99.5)."""
    out = io.StringIO()
    exporter = EmfExporter(stream=out)
    rng = random.Random(7)
    latencies = [rng.lognormvariate(-4.0, 1.5) for _ in range(20_000)]  # seconds
    for value in latencies:
        exporter.on_event("send_to_ack_latency", value, stream="s")
    exporter.on_event("send_to_ack_latency", 0.0, stream="s")
    exporter.flush()
    (doc,) = _documents(out)
    latency = doc["SendToAckLatency"]
    assert isinstance(latency, dict)
    values, counts = latency["Values"], latency["Counts"]
    assert len(values) == len(counts) <= 100
    assert values == sorted(values)
    assert sum(counts) == latency["Count"] == len(latencies) + 1
    assert latency["Max"] == max(latencies) and latency["Min"] == 0.0
    assert abs(latency["Sum"] - sum(latencies)) < 1e-6
    exact = sorted([*latencies, 0.0])
    for fraction in (0.5, 0.9, 0.99, 0.999):
        truth = exact[math.ceil(fraction * len(exact)) - 1]
        # 100 buckets over the ~6 decades seen: merged to about +-8% relative width
        assert abs(_percentile(values, counts, fraction) - truth) <= 0.085 * truth


def test_histogram_merges_buckets_instead_of_dropping_values() -> None:
    histogram = Histogram(max_buckets=10)
    for exponent in range(60):
        histogram.add(1.5**exponent)
    values, counts = histogram.values_and_counts()
    assert len(values) <= 10 and sum(counts) == 60


def test_unlisted_dimensions_are_dropped_so_cardinality_stays_bounded() -> None:
    out = io.StringIO()
    exporter = EmfExporter(stream=out)
    exporter.on_event("sink_records_rejected", sink="dynamodb", error="ThrottledError", partition_key="dev-1")
    exporter.flush()
    (doc,) = _documents(out)
    assert doc["Sink"] == "dynamodb"
    assert "dev-1" not in json.dumps(doc)
    assert "Error" not in doc


def test_flush_with_nothing_pending_writes_nothing() -> None:
    out = io.StringIO()
    assert EmfExporter(stream=out).flush() == 0
    assert out.getvalue() == ""


def test_kinds_and_units_come_from_the_catalogue_not_the_name() -> None:
    assert spec_for("records_sent").kind is MetricKind.COUNTER
    assert spec_for("bytes_sent").unit == "Bytes"
    assert spec_for("millis_behind_latest").kind is MetricKind.GAUGE
    assert cloudwatch_name("sink_records_call_failed") == "SinkRecordsCallFailed"
    # not catalogued: a plain counter, whatever the suffix suggests
    assert spec_for("my_app_latency_ms") == spec_for("my_app_events")
    assert spec_for("my_app_latency_ms").kind is MetricKind.COUNTER


def test_the_producers_send_to_ack_latency_is_in_seconds() -> None:
    spec = spec_for("send_to_ack_latency")
    assert (spec.kind, spec.unit) == (MetricKind.DISTRIBUTION, "Seconds")
