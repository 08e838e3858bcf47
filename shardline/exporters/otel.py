"""OpenTelemetry exporter for the metrics observer (extra ``otel``).

Counters become OTel counters, gauges and latencies histograms, all on the meter of the given
``MeterProvider`` (the global one by default), so whatever OTel exporter the application
configured (OTLP, Prometheus) carries Shardline's metrics.  Only whitelisted dimensions become
attributes, keeping cardinality bounded.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable
from typing import Any

from shardline.errors import ConfigurationError
from shardline.exporters.catalog import MetricKind, spec_for
from shardline.exporters.emf import DEFAULT_DIMENSIONS
from shardline.lograte import RepeatedWarning

try:
    from opentelemetry import metrics as otel_metrics
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError("OpenTelemetry export needs the extra: pip install 'shardline[otel]'") from exc

__all__ = ["OpenTelemetryExporter"]

_log = logging.getLogger(__name__)
_NOT_MADE: Any = object()

_UNITS = {"Milliseconds": "ms", "Seconds": "s", "Bytes": "By", "Count": "1", "None": "1"}


class OpenTelemetryExporter:
    """A :class:`shardline.metrics.MetricsObserver` recording into OpenTelemetry instruments."""

    def __init__(
        self,
        *,
        meter_provider: Any | None = None,
        prefix: str = "shardline.",
        dimensions: Iterable[str] = DEFAULT_DIMENSIONS,
    ) -> None:
        provider = meter_provider if meter_provider is not None else otel_metrics.get_meter_provider()
        self._meter = provider.get_meter("shardline")
        self._prefix = prefix
        self._dimension_names = tuple(dimensions)
        self._instruments: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._warnings = RepeatedWarning(_log)
        self.events_refused = 0
        """Events dropped because OpenTelemetry refused their instrument name."""
        self.values_dropped = 0
        """Events dropped because their value was negative or not a finite number (see :meth:`on_event`)."""

    def _instrument(self, name: str) -> Any:
        """The instrument of ``name``, made on its first event; ``None`` for a refused name.

        The SDK refuses a name its specification does not allow (``shardline.my event``, over
        255 characters) by raising a bare ``Exception`` from ``create_counter``, and did so on
        every event of that name: the guard around observers caught each one.  A refused name
        is now decided once, named in one warning and counted in :attr:`events_refused`.
        """
        instrument = self._instruments.get(name, _NOT_MADE)
        if instrument is not _NOT_MADE:
            return instrument
        with self._lock:
            instrument = self._instruments.get(name, _NOT_MADE)
            if instrument is not _NOT_MADE:
                return instrument
            spec = spec_for(name)
            unit = _UNITS.get(spec.unit, "1")
            full_name = self._prefix + name
            try:
                if spec.kind is MetricKind.COUNTER:
                    instrument = self._meter.create_counter(full_name, unit=unit)
                else:
                    instrument = self._meter.create_histogram(full_name, unit=unit)
            except Exception:  # noqa: BLE001 - the SDK raises a bare Exception for a name it refuses
                instrument = None
                self._warnings.warning(
                    "refused_name",
                    "metrics event %r is not exported: OpenTelemetry refuses the instrument name",
                    full_name[:80],
                )
            self._instruments[name] = instrument
        return instrument

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        """Add ``value`` to its counter or record it in its histogram.

        OpenTelemetry counters and histograms take neither a negative value nor one that is not
        finite: the SDK drops it and logs a warning, for every such event.  A lag a service
        answered negative (``MillisBehindLatest`` is only checked to be a Long) then logged a
        line per GetRecords call of every shard.  Such a value is dropped here, counted in
        :attr:`values_dropped` and named in a rate-limited warning.
        """
        if not math.isfinite(value) or value < 0:
            with self._lock:
                self.values_dropped += 1
            self._warnings.warning(
                ("dropped_value", name),
                "metrics event %r: a value that is negative or not finite is not exported "
                "(OpenTelemetry counters and histograms take neither)",
                name[:80],
            )
            return
        attributes = {
            key: str(dimensions[key]) for key in self._dimension_names if dimensions.get(key) is not None
        }
        instrument = self._instrument(name)
        if instrument is None:
            with self._lock:
                self.events_refused += 1
            return
        if spec_for(name).kind is MetricKind.COUNTER:
            instrument.add(value, attributes)
        else:
            instrument.record(value, attributes)
