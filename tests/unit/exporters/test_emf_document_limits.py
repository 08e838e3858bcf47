"""EMF documents stay within CloudWatch's limit of 100 metrics each, so none is rejected whole."""

from __future__ import annotations

import io
import json

from shardline.exporters import EmfExporter
from shardline.metrics_events import RECORDS_SENT


def test_a_dimension_set_with_more_than_100_metrics_is_split_into_documents() -> None:
    out = io.StringIO()
    exporter = EmfExporter(stream=out, clock=lambda: 1.0)
    exporter.on_event(RECORDS_SENT, 7, stream="orders")
    for i in range(230):  # an application's own events, sent through the same observer
        exporter.on_event(f"app_event_{i:03d}", i, stream="orders")

    assert exporter.flush() == 3
    documents = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(documents) == 3
    exported: dict[str, float] = {}
    for document in documents:
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert len(directive["Metrics"]) <= 100
        assert directive["Dimensions"] == [["Stream"]]
        assert document["Stream"] == "orders"
        for definition in directive["Metrics"]:
            exported[definition["Name"]] = document[definition["Name"]]
    assert len(exported) == 231  # every metric exactly once
    assert exported["RecordsSent"] == 7
    assert exported["AppEvent229"] == 229
