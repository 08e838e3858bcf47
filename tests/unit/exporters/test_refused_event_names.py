"""An application's event whose name cannot be exported is dropped once-named, never breaking others.

EMF: a document's dimensions and properties are fields beside its metric values, so an event
called ``stream`` (CloudWatch ``Stream``) shared the ``Stream`` field with the dimension, and
the document was filed under the wrong series.  OpenTelemetry: the SDK raises for a name its
specification does not allow, and it did so on every event of that name.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shardline.exporters import EmfExporter
from shardline.exporters.otel import OpenTelemetryExporter
from shardline.metrics_events import RECORDS_READ


@pytest.mark.parametrize("name", ["stream", "shard", "region", "", "x" * 256])
def test_emf_drops_an_event_whose_name_is_a_field_of_its_document(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    out = io.StringIO()
    exporter = EmfExporter(stream=out, properties={"Region": "eu-west-1"})
    with caplog.at_level(logging.WARNING, logger="shardline.exporters.emf"):
        for _ in range(3):
            exporter.on_event(name, 7, stream="orders", shard="shardId-0")
            exporter.on_event(RECORDS_READ, 2, stream="orders", shard="shardId-0")
    exporter.flush()

    (document,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert document["Stream"] == "orders"
    assert document["Shard"] == "shardId-0"
    assert document["Region"] == "eu-west-1"
    assert document["RecordsRead"] == 6
    names = [d["Name"] for d in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert names == ["RecordsRead"]
    assert exporter.events_refused == 3
    refused = [r for r in caplog.records if "not exported" in r.getMessage()]
    assert len(refused) == 1


def test_emf_exports_an_application_event_with_a_free_name() -> None:
    out = io.StringIO()
    exporter = EmfExporter(stream=out)
    exporter.on_event("orders_rejected", 2, stream="orders")
    exporter.flush()
    (document,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert document["OrdersRejected"] == 2
    assert exporter.events_refused == 0


def test_otel_refuses_a_bad_instrument_name_once_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    reader = InMemoryMetricReader()
    exporter = OpenTelemetryExporter(meter_provider=MeterProvider(metric_readers=[reader]))
    with caplog.at_level(logging.WARNING, logger="shardline.exporters.otel"):
        for _ in range(3):
            exporter.on_event("orders rejected!", 1, stream="orders")  # raised every time before
            exporter.on_event(RECORDS_READ, 2, stream="orders")

    assert exporter.events_refused == 3
    assert len([r for r in caplog.records if "not exported" in r.getMessage()]) == 1
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "shardline.records_read"
        for point in metric.data.data_points
    ]
    assert points == [6]
