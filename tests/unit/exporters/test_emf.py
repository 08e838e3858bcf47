"""The EMF exporter writes documents CloudWatch accepts and aggregates by kind."""

from __future__ import annotations

import io
import json

from shardline.exporters import EmfExporter, MetricKind, cloudwatch_name, spec_for


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
    assert doc["IteratorAgeMilliseconds"] == [10.0, 300.0, 20.0]
    assert doc["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [  # type: ignore[index]
        {"Name": "IteratorAgeMilliseconds", "Unit": "Milliseconds"}
    ]


def test_samples_are_bounded_and_keep_the_maximum() -> None:
    out = io.StringIO()
    exporter = EmfExporter(stream=out)
    for value in range(1000):
        exporter.on_event("put_latency_ms", float(value), stream="s")
    exporter.on_event("put_latency_ms", 99_999.0, stream="s")
    exporter.flush()
    (doc,) = _documents(out)
    values = doc["PutLatencyMs"]
    assert isinstance(values, list) and len(values) == 100
    assert max(values) == 99_999.0


def test_unlisted_dimensions_are_dropped_so_cardinality_stays_bounded() -> None:
    out = io.StringIO()
    exporter = EmfExporter(stream=out)
    exporter.on_event("sink_call_retried", sink="dynamodb", error="ThrottledError", partition_key="dev-1")
    exporter.flush()
    (doc,) = _documents(out)
    assert doc["Sink"] == "dynamodb"
    assert "dev-1" not in json.dumps(doc)
    assert "Error" not in doc


def test_flush_with_nothing_pending_writes_nothing() -> None:
    out = io.StringIO()
    assert EmfExporter(stream=out).flush() == 0
    assert out.getvalue() == ""


def test_kinds_and_names_inferred_from_event_names() -> None:
    assert spec_for("records_sent").kind is MetricKind.COUNTER
    assert spec_for("bytes_sent").unit == "Bytes"
    assert spec_for("send_to_ack_ms").kind is MetricKind.DISTRIBUTION
    assert spec_for("millis_behind_latest").kind is MetricKind.GAUGE
    assert cloudwatch_name("sink_records_dead_lettered") == "SinkRecordsDeadLettered"


def test_the_producers_send_to_ack_latency_is_in_seconds() -> None:
    spec = spec_for("send_to_ack_latency")
    assert (spec.kind, spec.unit) == (MetricKind.DISTRIBUTION, "Seconds")
