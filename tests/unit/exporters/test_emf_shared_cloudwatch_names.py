"""Two events with one CloudWatch name in one dimension set both reach CloudWatch."""

from __future__ import annotations

import io
import json

from shardline.exporters import EmfExporter
from shardline.metrics_events import ITERATOR_AGE_MS, MILLIS_BEHIND_LATEST, RECORDS_IN


def test_events_sharing_a_cloudwatch_name_go_to_separate_documents() -> None:
    out = io.StringIO()
    exporter = EmfExporter(stream=out, dimensions=())  # nothing tells the two apart
    exporter.on_event(ITERATOR_AGE_MS, 5, partition="shardId-0")  # the pipeline's
    exporter.on_event(MILLIS_BEHIND_LATEST, 9000, stream="orders", shard="shardId-0")  # a reader's
    exporter.on_event(RECORDS_IN, 3, partition="shardId-0")

    assert exporter.flush() == 2
    documents = [json.loads(line) for line in out.getvalue().splitlines()]
    ages = []
    for document in documents:
        names = [definition["Name"] for definition in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
        assert len(names) == len(set(names))
        if "IteratorAgeMilliseconds" in document:
            ages.append(
                (document["IteratorAgeMilliseconds"]["Min"], document["IteratorAgeMilliseconds"]["Count"])
            )
    assert sorted(ages) == [(5, 1), (9000, 1)]
    assert sum(document.get("RecordsIn", 0) for document in documents) == 3
