"""docs/configuration.md lists every field of every configuration object with its default."""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
_ROW = re.compile(r"^\| `(?P<name>\w+)` \| (?P<default>[^|]+) \|", re.MULTILINE)

CONFIGS = [
    ("producers.config", "ProducerConfig"),
    ("producers._kafka_config", "KafkaProducerConfig"),
    ("shardline.kafka_config", "KafkaClientConfig"),
    ("shardline.kafka_config", "TlsSettings"),
    ("shardline.kafka_config", "Scram"),
    ("shardline.kafka_config", "MskIam"),
    ("consumers.kinesis.config", "ReaderConfig"),
    ("consumers.pipeline", "PipelineConfig"),
    ("consumers.kafka", "KafkaConsumerConfig"),
    ("shardline.retry", "RetryPolicy"),
    ("shardline.aggregation", "DeaggregationPolicy"),
    ("benchmarks.gateway", "ShardLimits"),
    ("benchmarks.gateway", "FaultPlan"),
]


def _documented() -> dict[str, set[str]]:
    rows: dict[str, set[str]] = {}
    for match in _ROW.finditer(DOC.read_text(encoding="utf-8")):
        rows.setdefault(match["name"], set()).add(match["default"].strip())
    return rows


@pytest.mark.parametrize("module,name", CONFIGS, ids=[name for _, name in CONFIGS])
def test_every_field_is_documented_with_its_default(module: str, name: str) -> None:
    cls = getattr(importlib.import_module(module), name)
    rows = _documented()
    for field in dataclasses.fields(cls):
        if field.name.startswith("_"):
            continue
        assert field.name in rows, f"{name}.{field.name} is not in docs/configuration.md"
        if field.default is dataclasses.MISSING or not isinstance(field.default, int | float | str | bool):
            continue  # factories, required fields and objects are described in words
        assert f"`{field.default!r}`" in rows[field.name], (
            f"{name}.{field.name}: documented default {rows[field.name]} but the code says {field.default!r}"
        )
