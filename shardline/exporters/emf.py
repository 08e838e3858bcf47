"""CloudWatch embedded metric format (EMF) exporter.

Writes metrics as EMF JSON log lines (to stdout by default).  On Lambda, ECS with the awslogs
driver, or with the CloudWatch agent, those lines become CloudWatch metrics without any
PutMetricData call, so exporting costs no API requests and cannot be throttled.

Events are aggregated in memory per (metric, dimensions) and written on :meth:`flush` (call it
periodically, e.g. from the component's own timer, and at shutdown): counters as one sum,
gauges and distributions as up to 100 sampled values, which is EMF's per-metric limit and
enough for CloudWatch to compute percentiles.  Only dimensions named in ``dimensions`` are
exported, so a high-cardinality field (an error message, a key) can never explode the metric
count; payloads never reach an observer in the first place.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from shardline.exporters.catalog import MetricKind, cloudwatch_name, spec_for

__all__ = ["DEFAULT_DIMENSIONS", "EmfExporter"]

DEFAULT_DIMENSIONS: tuple[str, ...] = ("stream", "shard", "sink", "topic")
_MAX_VALUES = 100  # EMF accepts at most 100 values per metric in one document


@dataclass(slots=True)
class _Series:
    kind: MetricKind
    unit: str
    total: float = 0.0
    values: list[float] = field(default_factory=list)
    seen: int = 0

    def add(self, value: float) -> None:
        self.seen += 1
        if self.kind is MetricKind.COUNTER:
            self.total += value
        elif len(self.values) < _MAX_VALUES:
            self.values.append(value)
        else:  # keep the maximum visible: replace the smallest sample when a larger one arrives
            smallest = min(range(_MAX_VALUES), key=self.values.__getitem__)
            if value > self.values[smallest]:
                self.values[smallest] = value


def _dimension_sets(dims: tuple[tuple[str, str], ...]) -> list[list[str]]:
    """The full dimension set plus a roll-up on the first one (e.g. per stream across shards),
    so alarms can watch a whole stream without one alarm per shard."""
    names = [key.capitalize() for key, _ in dims]
    return [names, names[:1]] if len(names) > 1 else [names]


class EmfExporter:
    """A :class:`shardline.metrics.MetricsObserver` that writes CloudWatch EMF documents."""

    def __init__(
        self,
        *,
        namespace: str = "Shardline",
        dimensions: Iterable[str] = DEFAULT_DIMENSIONS,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
        properties: dict[str, str] | None = None,
    ) -> None:
        self._namespace = namespace
        self._dimension_names = tuple(dimensions)
        self._stream = stream
        self._clock = clock
        self._properties = dict(properties or {})
        self._lock = threading.Lock()
        self._series: dict[tuple[tuple[tuple[str, str], ...], str], _Series] = {}

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        dims = tuple(
            (key, str(dimensions[key])) for key in self._dimension_names if dimensions.get(key) is not None
        )
        spec = spec_for(name)
        with self._lock:
            series = self._series.get((dims, name))
            if series is None:
                series = self._series[(dims, name)] = _Series(spec.kind, spec.unit)
            series.add(float(value))

    def flush(self) -> int:
        """Write one EMF document per dimension set; returns how many documents were written."""
        with self._lock:
            pending, self._series = self._series, {}
        by_dims: dict[tuple[tuple[str, str], ...], dict[str, _Series]] = {}
        for (dims, name), series in pending.items():
            by_dims.setdefault(dims, {})[name] = series
        out = self._stream if self._stream is not None else sys.stdout
        timestamp = int(self._clock() * 1000)
        for dims, metrics in by_dims.items():
            out.write(json.dumps(self._document(timestamp, dims, metrics), separators=(",", ":")) + "\n")
        out.flush()
        return len(by_dims)

    def _document(
        self, timestamp: int, dims: tuple[tuple[str, str], ...], metrics: dict[str, _Series]
    ) -> dict[str, Any]:
        document: dict[str, Any] = dict(self._properties)
        definitions = []
        for name, series in sorted(metrics.items()):
            metric_name = cloudwatch_name(name)
            definitions.append({"Name": metric_name, "Unit": series.unit})
            document[metric_name] = series.total if series.kind is MetricKind.COUNTER else list(series.values)
        for key, value in dims:
            document[key.capitalize()] = value
        document["_aws"] = {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [
                {
                    "Namespace": self._namespace,
                    "Dimensions": _dimension_sets(dims),
                    "Metrics": definitions,
                }
            ],
        }
        return document
