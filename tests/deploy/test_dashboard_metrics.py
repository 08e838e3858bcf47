"""dashboard.yaml watches metrics Shardline really exports, under the dimensions it exports them.

A widget or alarm on a metric name (or dimension set) that no EMF document carries shows
nothing and never fires, silently.  The metrics available are what the EMF exporter of
`shardline consume --metrics emf` writes for every catalogued event, each given the
dimensions the catalogue says it carries; an event listing both `stream` and `topic` is
reported with one of them (Kinesis components name the stream, Kafka ones the topic), never
with both.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

from shardline.exporters.emf import EmfExporter
from shardline.metrics_events import CATALOGUE
from tests.deploy.policies import template

NAMESPACE = "Shardline"


def _exported() -> set[tuple[str, frozenset[str]]]:
    """(metric name, dimension names) of every metric the EMF exporter writes."""
    out = io.StringIO()
    exporter = EmfExporter(stream=out)
    for event in CATALOGUE.values():
        for dimensions in _as_reported(event.dimensions):
            exporter.on_event(event.name, 1.0, **{dimension: "x" for dimension in dimensions})
    exporter.flush()
    found = set()
    for line in out.getvalue().splitlines():
        (directive,) = json.loads(line)["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE
        for dimensions in directive["Dimensions"]:
            for metric in directive["Metrics"]:
                found.add((metric["Name"], frozenset(dimensions)))
    return found


def _as_reported(dimensions: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The dimension sets an event listing ``dimensions`` is reported with."""
    if "stream" in dimensions and "topic" in dimensions:
        return [tuple(d for d in dimensions if d != other) for other in ("topic", "stream")]
    return [dimensions]


def _watched() -> list[tuple[str, str, frozenset[str]]]:
    """(where, metric name, dimension names) of each Shardline metric the template reads."""
    resources = template("dashboard")["Resources"]
    watched = []
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    for widget in json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]:
        for metric in widget["properties"]["metrics"]:
            namespace, name, *pairs = metric
            if namespace == NAMESPACE:
                watched.append((widget["properties"]["title"], name, frozenset(pairs[0::2])))
    for logical_id, resource in resources.items():
        props: dict[str, Any] = resource["Properties"]
        if resource["Type"] == "AWS::CloudWatch::Alarm" and props["Namespace"] == NAMESPACE:
            dimensions = frozenset(d["Name"] for d in props.get("Dimensions", []))
            watched.append((logical_id, props["MetricName"], dimensions))
    return watched


def test_the_dashboard_watches_shardline_metrics() -> None:
    watched = _watched()
    assert any(where.endswith("Alarm") for where, _, _ in watched)
    assert len(watched) >= 5


def test_every_watched_metric_is_exported_with_those_dimensions() -> None:
    exported = _exported()
    names = {name for name, _ in exported}
    for where, name, dimensions in _watched():
        assert name in names, f"dashboard.yaml {where}: Shardline exports no metric {name}"
        assert (name, dimensions) in exported, (
            f"dashboard.yaml {where}: {name} is exported with dimensions "
            f"{sorted(sorted(d) for n, d in exported if n == name)}, not {sorted(dimensions)}"
        )
