"""Exporters for the metrics observer: CloudWatch EMF (no API calls) and OpenTelemetry (extra)."""

from shardline.exporters.catalog import MetricKind, MetricSpec, cloudwatch_name, spec_for
from shardline.exporters.emf import EmfExporter

__all__ = ["EmfExporter", "MetricKind", "MetricSpec", "cloudwatch_name", "spec_for"]
