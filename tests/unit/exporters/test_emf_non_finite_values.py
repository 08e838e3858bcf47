"""A NaN or infinite value never makes an EMF document unreadable, nor raises from the exporter."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pytest

from shardline.exporters import EmfExporter
from shardline.metrics_events import BATCHES, MILLIS_BEHIND_LATEST, RECORDS_SENT


def _strict(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_dropped_and_the_document_stays_valid_json(bad: float) -> None:
    out = io.StringIO()
    exporter = EmfExporter(stream=out)
    exporter.on_event(RECORDS_SENT, 5, stream="orders")
    exporter.on_event(RECORDS_SENT, bad, stream="orders")  # a counter
    exporter.on_event(MILLIS_BEHIND_LATEST, bad, stream="orders", shard="shardId-0")  # a gauge
    exporter.on_event(MILLIS_BEHIND_LATEST, 40, stream="orders", shard="shardId-0")
    exporter.on_event(BATCHES, 1, stream="orders")

    exporter.flush()
    documents = [json.loads(line, parse_constant=_strict) for line in out.getvalue().splitlines()]
    by_shard = {document.get("Shard"): document for document in documents}
    assert by_shard[None]["RecordsSent"] == 5
    assert by_shard[None]["Batches"] == 1
    gauge = by_shard["shardId-0"]["IteratorAgeMilliseconds"]
    assert (gauge["Count"], gauge["Min"], gauge["Max"]) == (1, 40, 40)
