"""What each metric event means to an exporter: its kind and unit, from the event catalogue.

The catalogue itself is :mod:`shardline.metrics_events`; this module gives exporters the two
questions they ask of it.  Nothing is inferred from an event's name: an event that is not in
the catalogue (an application's own, sent through the same observer) is a plain counter.
"""

from __future__ import annotations

from dataclasses import dataclass

from shardline.metrics_events import MetricKind, event_for

__all__ = ["MetricKind", "MetricSpec", "cloudwatch_name", "spec_for"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    kind: MetricKind
    unit: str  # CloudWatch unit name


def spec_for(name: str) -> MetricSpec:
    """Kind and unit of the event ``name``, as catalogued."""
    event = event_for(name)
    return MetricSpec(event.kind, event.unit.value)


def cloudwatch_name(name: str) -> str:
    """CloudWatch metric name for an event: ``records_read`` -> ``RecordsRead``."""
    return event_for(name).cloudwatch_name
