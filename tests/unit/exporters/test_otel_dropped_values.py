"""Values OpenTelemetry cannot take are dropped by the exporter, counted, and warned about at a bounded rate.

The SDK drops a negative or non-finite measurement itself, but logs a warning for each one: a
shard whose ``MillisBehindLatest`` came back negative logged a line per GetRecords call.
"""

from __future__ import annotations

import logging
import math

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shardline.exporters.otel import OpenTelemetryExporter
from shardline.metrics_events import MILLIS_BEHIND_LATEST, RECORDS_READ


def _points(reader: InMemoryMetricReader) -> dict[str, list[object]]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


@pytest.mark.parametrize("bad", [-5, math.nan, math.inf, -math.inf])
def test_a_value_otel_refuses_is_dropped_with_one_warning(
    bad: float, caplog: pytest.LogCaptureFixture
) -> None:
    reader = InMemoryMetricReader()
    exporter = OpenTelemetryExporter(meter_provider=MeterProvider(metric_readers=[reader]))
    with caplog.at_level(logging.WARNING):
        for _ in range(200):
            exporter.on_event(MILLIS_BEHIND_LATEST, bad, stream="s", shard="a")
            exporter.on_event(RECORDS_READ, bad, stream="s", shard="a")
        exporter.on_event(MILLIS_BEHIND_LATEST, 250, stream="s", shard="a")
        exporter.on_event(RECORDS_READ, 3, stream="s", shard="a")

    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 2, [record.getMessage() for record in warnings]  # one per event name
    assert exporter.values_dropped == 400
    points = _points(reader)
    (lag,) = points["shardline.millis_behind_latest"]
    assert (lag.count, lag.min, lag.max) == (1, 250, 250)  # type: ignore[attr-defined]
    (read,) = points["shardline.records_read"]
    assert read.value == 3  # type: ignore[attr-defined]
