"""Field values InfluxDB would refuse are rejected per record, before the write: a refused
line fails the whole call, which the pipeline then bisects to find it."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.sinks.influxdb import field_value
from shardline.errors import ValidationError


@pytest.mark.parametrize(
    "value", [2**63, -(2**63) - 1, 10**30, float("nan"), float("inf"), [1], {"a": 1}, None]
)
def test_a_value_influxdb_refuses_is_a_validation_error(value: Any) -> None:
    with pytest.raises(ValidationError):
        field_value(value)


@pytest.mark.parametrize(
    ("value", "line"),
    [(2**63 - 1, "9223372036854775807i"), (-(2**63), "-9223372036854775808i"), (True, "true"), (1.5, "1.5")],
)
def test_values_within_its_types_are_written(value: Any, line: str) -> None:
    assert field_value(value) == line
