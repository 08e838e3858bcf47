"""The OpenTelemetry exporter records into real SDK instruments."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shardline.exporters.otel import OpenTelemetryExporter


def test_counters_and_histograms_reach_the_sdk() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    exporter = OpenTelemetryExporter(meter_provider=provider)
    exporter.on_event("records_read", 3, stream="s", shard="a", partition_key="secret-ish")
    exporter.on_event("records_read", 4, stream="s", shard="a")
    exporter.on_event("millis_behind_latest", 250, stream="s", shard="a")

    data = reader.get_metrics_data()
    assert data is not None
    metrics = {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    counter_point = next(iter(metrics["shardline.records_read"].data.data_points))
    assert counter_point.value == 7
    assert dict(counter_point.attributes or {}) == {"stream": "s", "shard": "a"}
    histogram_point = next(iter(metrics["shardline.millis_behind_latest"].data.data_points))
    assert histogram_point.max == 250
    assert metrics["shardline.millis_behind_latest"].unit == "ms"
