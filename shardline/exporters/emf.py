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

The documents are written by a thread the exporter owns (:mod:`shardline.exporters._writer`),
never by the caller of :meth:`flush`: a stdout nobody reads blocks ``write()``, and on the
event loop's thread that stopped everything else the loop runs.  A stalled stdout costs
metrics (dropped beyond a bounded queue, and counted), never the data path.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from shardline.errors import BackgroundTaskError, ConfigurationError
from shardline.exporters._writer import LineWriter
from shardline.exporters.catalog import MetricKind, cloudwatch_name, spec_for
from shardline.lograte import RepeatedWarning

__all__ = ["DEFAULT_DIMENSIONS", "DEFAULT_FLUSH_TIMEOUT", "DEFAULT_QUEUE_LIMIT", "EmfExporter", "Histogram"]

_log = logging.getLogger(__name__)

DEFAULT_DIMENSIONS: tuple[str, ...] = ("stream", "shard", "sink", "topic")
DEFAULT_FLUSH_TIMEOUT = 2.0
"""Seconds :meth:`EmfExporter.flush` waits for its documents to be written: microseconds when
stdout is read, so only a stalled one ever takes it."""
DEFAULT_QUEUE_LIMIT = 2_000
"""Documents waiting to be written before more are dropped: over ten minutes of a consumer
reading 64 shards, flushed every minute, and at most a few MB."""
_MAX_VALUES = 100  # EMF accepts at most 100 values per metric in one document
_MAX_METRICS = 100  # and at most 100 metric definitions per document
_MAX_NAME_CHARS = 255  # CloudWatch's limit on a metric name
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
        """Representative values (ascending) and how many values each stands for.

        Worked out in logarithms and never above the largest value counted: a bucket's upper
        end may lie past the largest float, and ``2 * gamma**i`` of a value near it was
        infinity, which JSON cannot carry (CloudWatch refused the whole document).
        """
        log_gamma = self._log_gamma
        # log(2 / (gamma + 1)), without forming gamma (which a coarse histogram may overflow)
        log_scale = math.log(2.0) - log_gamma - math.log1p(math.exp(-log_gamma))
        log_ceiling = math.log(self.maximum) if self._buckets else 0.0
        values: list[float] = [0.0] if self.zeros else []
        counts: list[int] = [self.zeros] if self.zeros else []
        for index in sorted(self._buckets):
            values.append(math.exp(min(index * log_gamma + log_scale, log_ceiling)))
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

    def add(self, value: float) -> bool:
        """Add ``value``; ``False`` (nothing added) when it would carry the sum past the largest
        float: JSON cannot carry the infinity, and CloudWatch refused the whole document, the
        other metrics of its dimension set with it.  The first value of a series always fits."""
        if self.kind is MetricKind.COUNTER:
            total = self.total + value
            if not math.isfinite(total):
                return False
            self.total = total
            return True
        if self.histogram is None:
            self.histogram = Histogram()
        if not math.isfinite(self.histogram.total + value):
            return False
        self.histogram.add(value)
        return True

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
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
    ) -> None:
        if queue_limit < 1:
            raise ConfigurationError(f"queue_limit must be at least 1 document, got {queue_limit!r}")
        self._namespace = namespace
        self._dimension_names = tuple(dimensions)
        self._stream = stream
        self._clock = clock
        self._properties = dict(properties or {})
        self._lock = threading.Lock()
        self._handover = threading.Lock()
        self._series: dict[tuple[tuple[tuple[str, str], ...], str], _Series] = {}
        self._queue_limit = queue_limit
        self._warnings = RepeatedWarning(_log)
        self._writer: LineWriter | None = None  # started by the first flush that has documents
        self._dropped = 0  # by writers already replaced
        self._failed = 0
        # a document's own fields, which no metric may share (see _exportable)
        self._document_fields = frozenset(
            {"_aws", *self._properties, *(key.capitalize() for key in self._dimension_names)}
        )
        self._names: dict[str, bool] = {}
        self.events_refused = 0
        """Events dropped because their name cannot be a metric of a document (see :meth:`on_event`)."""

    @property
    def documents_dropped(self) -> int:
        """Documents never written because the queue was full (stdout not read) or the writer died."""
        with self._lock:
            return self._dropped + (self._writer.dropped if self._writer is not None else 0)

    @property
    def documents_failed(self) -> int:
        """Documents whose write raised (stdout closed, a full disk)."""
        with self._lock:
            return self._failed + (self._writer.failed if self._writer is not None else 0)

    @property
    def documents_queued(self) -> int:
        """Documents handed to the writer thread and not written yet."""
        writer = self._writer
        return writer.queued if writer is not None else 0

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        """Add ``value`` to its series; a value that is not a finite number is dropped, and so
        is one that would carry its series' sum past the largest float.

        JSON has no NaN or infinity: one such value made its series, and so the whole
        document of its dimension set, unreadable to CloudWatch (a counter), or raised
        from the histogram (a gauge or distribution).  An event whose name cannot be a
        metric of the document is dropped too (:meth:`_exportable`).
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
                if not self._exportable(name):
                    self.events_refused += 1
                    return
                series = self._series[(dims, name)] = _Series(spec.kind, spec.unit)
            series.add(number)

    def _exportable(self, name: str) -> bool:
        """Whether an event called ``name`` can be a metric of a document (decided once a name).

        An application's own event named like a dimension (``stream`` is CloudWatch's
        ``Stream``) or a property would share the document's field with it: the value
        overwrote the dimension, or the dimension the value, and CloudWatch filed the whole
        document under the wrong series or none.  A name CloudWatch refuses (empty, over 255
        characters) loses every metric of its document.  Such an event is dropped, counted in
        :attr:`events_refused` and named once in a warning.
        """
        verdict = self._names.get(name)
        if verdict is None:
            metric_name = cloudwatch_name(name)
            if not 0 < len(metric_name) <= _MAX_NAME_CHARS:
                reason = "CloudWatch metric names are 1 to 255 characters"
            elif metric_name in self._document_fields:
                reason = f"its CloudWatch name {metric_name!r} is a dimension or property of the document"
            else:
                reason = ""
            verdict = self._names[name] = not reason
            if reason:
                message = "metrics event %r is not exported: %s"
                self._warnings.warning("refused_name", message, name[:80], reason)
        return verdict

    def flush(self, timeout: float = DEFAULT_FLUSH_TIMEOUT) -> int:
        """Hand the metrics gathered since the last flush to the writer thread, then wait at most
        ``timeout`` seconds until they are written; returns how many documents were queued.

        One document per dimension set, or several when it has more than 100 metrics
        (CloudWatch rejects a document over that limit whole, so every metric in it, the
        catalogued ones next to an application's own events, would be lost) or two events
        with the same CloudWatch name.

        ``timeout=0`` never waits: what a periodic flush on an event loop's thread passes.
        At the end of a Lambda invocation or at exit, wait: the writer is a daemon thread,
        and Lambda freezes the process once the handler returns.  Documents that find the
        queue full are dropped (:attr:`documents_dropped`), a write that raises is logged and
        counted (:attr:`documents_failed`); neither raises here.  A writer thread that died
        is raised as a :class:`~shardline.errors.BackgroundTaskError` once, with the metrics
        kept for the next flush, which starts a new writer.
        """
        with self._handover:  # two flushes' documents never interleave
            writer = self._live_writer()
            with self._lock:
                pending, self._series = self._series, {}
            by_dims: dict[tuple[tuple[str, str], ...], dict[str, _Series]] = {}
            for (dims, name), series in pending.items():
                by_dims.setdefault(dims, {})[name] = series
            out = self._stream if self._stream is not None else sys.stdout
            timestamp = int(self._clock() * 1000)
            lines = [
                json.dumps(self._document(timestamp, dims, chunk), separators=(",", ":")) + "\n"
                for dims, metrics in by_dims.items()
                for chunk in _documents(metrics)
            ]
            queued = writer.put(out, lines) if lines else 0
        if timeout > 0 and not writer.wait_written(timeout):
            self._warn_stalled(writer, timeout)
        return queued

    def close(self, timeout: float = DEFAULT_FLUSH_TIMEOUT) -> None:
        """Flush, wait at most ``timeout`` seconds for the documents to be written, and end the
        writer thread (a later flush starts another)."""
        self.flush(timeout=0)
        with self._lock:
            writer = self._writer
        if writer is None:
            return
        if not writer.close(timeout):
            self._warn_stalled(writer, timeout)
        with self._lock:
            if self._writer is writer:
                self._writer = None
                self._dropped += writer.dropped
                self._failed += writer.failed

    def _warn_stalled(self, writer: LineWriter, timeout: float) -> None:
        if writer.death is None:  # a dead writer is raised by the next flush instead
            self._warnings.warning(
                "stalled",
                "metrics not written within %.1f s (is stdout read?): %d documents queued",
                timeout,
                writer.queued,
            )

    def _live_writer(self) -> LineWriter:
        """The writer thread's owner: a dead one is raised once and replaced by the next call."""
        with self._lock:
            writer = self._writer
            if writer is None:
                writer = self._writer = LineWriter(
                    capacity=self._queue_limit, name="shardline-emf-writer", warnings=self._warnings
                )
                return writer
            if writer.death is None:
                return writer
            self._writer = None
            self._dropped += writer.dropped
            self._failed += writer.failed
        raise BackgroundTaskError("the EMF writer thread died; metrics are kept for the next flush") from (
            writer.death
        )

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
