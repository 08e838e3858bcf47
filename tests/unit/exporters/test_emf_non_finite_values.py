"""A NaN or infinite value never makes an EMF document unreadable, nor raises from the exporter."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pytest

from shardline.exporters import EmfExporter
from shardline.exporters.emf import Histogram
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


def test_huge_finite_values_never_put_an_infinity_in_the_document() -> None:
    """Each value is finite, but a histogram bucket near the largest float was reported as
    infinity, and two such counts summed to it: CloudWatch refused the whole document."""
    out = io.StringIO()
    exporter = EmfExporter(stream=out)
    exporter.on_event(RECORDS_SENT, 1e308, stream="orders")
    exporter.on_event(RECORDS_SENT, 1e308, stream="orders")  # would make the sum infinite
    exporter.on_event(BATCHES, 1, stream="orders")
    for value in (1.7e308, 1.7e308, 3.0):  # a gauge: the second would make its Sum infinite
        exporter.on_event(MILLIS_BEHIND_LATEST, value, stream="orders", shard="shardId-0")

    exporter.flush()
    documents = [json.loads(line, parse_constant=_strict) for line in out.getvalue().splitlines()]
    by_shard = {document.get("Shard"): document for document in documents}
    assert by_shard[None]["RecordsSent"] == 1e308
    assert by_shard[None]["Batches"] == 1
    gauge = by_shard["shardId-0"]["IteratorAgeMilliseconds"]
    assert (gauge["Count"], gauge["Min"], gauge["Max"], gauge["Sum"]) == (2, 3.0, 1.7e308, 1.7e308 + 3.0)
    assert sum(gauge["Counts"]) == 2
    assert all(0 < value <= 1.7e308 for value in gauge["Values"])


def test_a_coarse_histogram_reports_finite_values_within_what_it_counted() -> None:
    histogram = Histogram()
    for exponent in range(-300, 301, 3):  # many more buckets than EMF's 100: coarsened
        histogram.add(10.0**exponent)
    values, counts = histogram.values_and_counts()
    assert sum(counts) == histogram.count == 201
    assert len(values) <= 100
    assert all(math.isfinite(value) and 0 < value <= 1e300 for value in values)
    assert values == sorted(values)
