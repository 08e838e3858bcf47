"""What each metric event means to an exporter: its kind and unit.

Instrumented code emits plain snake_case event names (``records_read``, ``millis_behind_latest``,
``put_latency_ms``).  Exporters need to know whether a value is a count to add up, a gauge to
sample, or a latency to keep as a distribution, and in which unit.  The kind is inferred from
the name so new events need no registration; the table below pins the well-known ones that
dashboards and alarms depend on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["MetricKind", "MetricSpec", "cloudwatch_name", "spec_for"]


class MetricKind(enum.Enum):
    COUNTER = "counter"  # summed over an export interval
    GAUGE = "gauge"  # sampled; the maximum and the samples matter
    DISTRIBUTION = "distribution"  # every value kept (bounded), for percentiles


@dataclass(frozen=True, slots=True)
class MetricSpec:
    kind: MetricKind
    unit: str  # CloudWatch unit name


_KNOWN: dict[str, MetricSpec] = {
    "millis_behind_latest": MetricSpec(MetricKind.GAUGE, "Milliseconds"),
    "iterator_age_ms": MetricSpec(MetricKind.GAUGE, "Milliseconds"),
    "checkpoint_lag": MetricSpec(MetricKind.GAUGE, "Count"),
    "checkpoint_lag_records": MetricSpec(MetricKind.GAUGE, "Count"),
    "in_flight_records": MetricSpec(MetricKind.GAUGE, "Count"),
    "buffered_records": MetricSpec(MetricKind.GAUGE, "Count"),
    "buffered_bytes": MetricSpec(MetricKind.GAUGE, "Bytes"),
    "aggregation_ratio": MetricSpec(MetricKind.GAUGE, "None"),
    "send_to_ack_latency": MetricSpec(MetricKind.DISTRIBUTION, "Seconds"),
}

_CLOUDWATCH_NAMES: dict[str, str] = {
    "millis_behind_latest": "IteratorAgeMilliseconds",
    "iterator_age_ms": "IteratorAgeMilliseconds",
}


def spec_for(name: str) -> MetricSpec:
    """Kind and unit of ``name``: pinned for known names, inferred from the suffix otherwise."""
    known = _KNOWN.get(name)
    if known is not None:
        return known
    if name.endswith(("_ms", "_latency")):
        return MetricSpec(MetricKind.DISTRIBUTION, "Milliseconds")
    if name.endswith("_seconds"):
        return MetricSpec(MetricKind.DISTRIBUTION, "Seconds")
    if name.endswith("_bytes") or name.startswith("bytes_"):
        return MetricSpec(MetricKind.COUNTER, "Bytes")
    return MetricSpec(MetricKind.COUNTER, "Count")


def cloudwatch_name(name: str) -> str:
    """CloudWatch metric name for an event: ``records_read`` -> ``RecordsRead``."""
    pinned = _CLOUDWATCH_NAMES.get(name)
    if pinned is not None:
        return pinned
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)
