"""CloudWatch embedded metric format (EMF) exporter.

Writes metrics as EMF JSON log lines (to stdout by default).  On Lambda, ECS with the awslogs
driver, or with the CloudWatch agent, those lines become CloudWatch metrics without any
PutMetricData call, so exporting costs no API requests and cannot be throttled.

Events are aggregated in memory per (metric, dimensions) and written on :meth:`flush` (call it
periodically, e.g. from the component's own timer, and at shutdown): counters as one sum,
gauges and distributions as a histogram in EMF's ``Values``/``Counts`` form with exact
``Min``/``Max``/``Sum``/``Count``.  Every value is counted in a logarithmic bucket (about 1%
relative width; buckets are merged pairwise whenever more than 100, EMF's limit per metric,
would be needed), so CloudWatch's percentiles are unbiased however many values arrived: no
sample is dropped, none is preferred.  Only dimensions named in ``dimensions`` are
exported, so a high-cardinality field (an error message, a key) can never explode the metric
count; payloads never reach an observer in the first place.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from shardline.exporters.catalog import MetricKind, cloudwatch_name, spec_for

__all__ = ["DEFAULT_DIMENSIONS", "EmfExporter", "Histogram"]

DEFAULT_DIMENSIONS: tuple[str, ...] = ("stream", "shard", "sink", "topic")
_MAX_VALUES = 100  # EMF accepts at most 100 values per metric in one document
_MAX_METRICS = 100  # and at most 100 metric definitions per document
_RELATIVE_ERROR = 0.01


class Histogram:
    """Log-bucketed counts of non-negative values, at most ``max_buckets`` buckets.

    Bucket ``i`` holds the values in ``(gamma**(i-1), gamma**i]``; it is reported by the
    value whose relative distance to both ends is equal, so each value is off by at most the
    bucket's relative half-width.  Values ``<= 0`` share one bucket reported as 0.  When a new
    bucket would exceed the bound, neighbouring buckets merge (gamma squares): resolution
    drops, but every value stays counted.
    """

    __slots__ = ("_buckets", "_log_gamma", "_max_buckets", "count", "maximum", "minimum", "total", "zeros")

    def __init__(self, *, relative_error: float = _RELATIVE_ERROR, max_buckets: int = _MAX_VALUES) -> None:
        self._log_gamma = math.log((1 + relative_error) / (1 - relative_error))
        self._max_buckets = max_buckets
        self._buckets: dict[int, int] = {}
        self.zeros = 0
        self.count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        if value <= 0:
            self.zeros += 1
        else:
            index = math.ceil(math.log(value) / self._log_gamma)
            self._buckets[index] = self._buckets.get(index, 0) + 1
        while len(self._buckets) + (1 if self.zeros else 0) > self._max_buckets:
            self._coarsen()

    def _coarsen(self) -> None:
        merged: dict[int, int] = {}
        for index, count in self._buckets.items():
            key = -((-index) // 2)  # ceil(index / 2): (g^(2j-2), g^(2j)] holds 2j-1 and 2j
            merged[key] = merged.get(key, 0) + count
        self._buckets = merged
        self._log_gamma *= 2

    def values_and_counts(self) -> tuple[list[float], list[int]]:
        """Representative values (ascending) and how many values each stands for."""
        gamma = math.exp(self._log_gamma)
        values: list[float] = [0.0] if self.zeros else []
        counts: list[int] = [self.zeros] if self.zeros else []
        for index in sorted(self._buckets):
            values.append(2 * math.exp(index * self._log_gamma) / (gamma + 1))
            counts.append(self._buckets[index])
        return values, counts

    def emf_value(self) -> dict[str, Any]:
        """The metric's value in an EMF document."""
        values, counts = self.values_and_counts()
        return {
            "Values": values,
            "Counts": counts,
            "Max": self.maximum,
            "Min": self.minimum,
            "Count": self.count,
            "Sum": self.total,
        }


@dataclass(slots=True)
class _Series:
    kind: MetricKind
    unit: str
    total: float = 0.0
    histogram: Histogram | None = field(default=None)

    def add(self, value: float) -> None:
        if self.kind is MetricKind.COUNTER:
            self.total += value
            return
        if self.histogram is None:
            self.histogram = Histogram()
        self.histogram.add(value)

    def emf_value(self) -> float | dict[str, Any]:
        if self.kind is MetricKind.COUNTER or self.histogram is None:
            return self.total
        return self.histogram.emf_value()


def _dimension_sets(dims: tuple[tuple[str, str], ...]) -> list[list[str]]:
    """The full dimension set plus a roll-up on the first one (e.g. per stream across shards),
    so alarms can watch a whole stream without one alarm per shard."""
    names = [key.capitalize() for key, _ in dims]
    return [names, names[:1]] if len(names) > 1 else [names]


def _documents(metrics: dict[str, _Series]) -> list[dict[str, _Series]]:
    """The metrics of one dimension set, split into what one EMF document may hold.

    At most 100 metrics each, and never two events with the same CloudWatch name in one:
    the document has one field per name, so the second value overwrote the first
    (``iterator_age_ms`` and ``millis_behind_latest`` are both IteratorAgeMilliseconds and
    meet when no dimension tells them apart).  In separate documents CloudWatch counts both.
    """
    documents: list[dict[str, _Series]] = []
    names_in: list[set[str]] = []
    for name in sorted(metrics):
        metric_name = cloudwatch_name(name)
        for document, taken in zip(documents, names_in, strict=True):
            if len(document) < _MAX_METRICS and metric_name not in taken:
                break
        else:
            document, taken = {}, set()
            documents.append(document)
            names_in.append(taken)
        document[name] = metrics[name]
        taken.add(metric_name)
    return documents


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
        """Add ``value`` to its series; a value that is not a finite number is dropped.

        JSON has no NaN or infinity: one such value made its series, and so the whole
        document of its dimension set, unreadable to CloudWatch (a counter), or raised
        from the histogram (a gauge or distribution).
        """
        number = float(value)
        if not math.isfinite(number):
            return
        dims = tuple(
            (key, str(dimensions[key])) for key in self._dimension_names if dimensions.get(key) is not None
        )
        spec = spec_for(name)
        with self._lock:
            series = self._series.get((dims, name))
            if series is None:
                series = self._series[(dims, name)] = _Series(spec.kind, spec.unit)
            series.add(number)

    def flush(self) -> int:
        """Write the metrics gathered since the last flush; returns how many documents were written.

        One document per dimension set, or several when it has more than 100 metrics
        (CloudWatch rejects a document over that limit whole, so every metric in it, the
        catalogued ones next to an application's own events, would be lost) or two events
        with the same CloudWatch name.
        """
        with self._lock:
            pending, self._series = self._series, {}
        by_dims: dict[tuple[tuple[str, str], ...], dict[str, _Series]] = {}
        for (dims, name), series in pending.items():
            by_dims.setdefault(dims, {})[name] = series
        out = self._stream if self._stream is not None else sys.stdout
        timestamp = int(self._clock() * 1000)
        written = 0
        for dims, metrics in by_dims.items():
            for chunk in _documents(metrics):
                out.write(json.dumps(self._document(timestamp, dims, chunk), separators=(",", ":")) + "\n")
                written += 1
        out.flush()
        return written

    def _document(
        self, timestamp: int, dims: tuple[tuple[str, str], ...], metrics: dict[str, _Series]
    ) -> dict[str, Any]:
        document: dict[str, Any] = dict(self._properties)
        definitions = []
        for name, series in sorted(metrics.items()):
            metric_name = cloudwatch_name(name)
            definitions.append({"Name": metric_name, "Unit": series.unit})
            document[metric_name] = series.emf_value()
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
