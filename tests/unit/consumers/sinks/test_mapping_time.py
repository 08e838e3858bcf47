"""A payload's time field is untrusted: any value is a time or a typed rejection."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.sinks.mapping import FieldMapping
from shardline.errors import ValidationError
from shardline.records import ConsumedRecord, KinesisPosition

RECORD = ConsumedRecord(b"{}", "k", KinesisPosition("s", "shardId-000000000000", "1"))


@pytest.mark.parametrize(
    "value",
    [
        1e300,
        -1e300,
        float("nan"),
        float("inf"),
        True,
        None,
        [1],
        {"t": 1},
        "yesterday",
        "2026-01-01T00:00:00",
    ],
)
def test_a_time_that_is_not_one_is_a_validation_error(value: Any) -> None:
    mapping = FieldMapping(time_field="t", time_unit="s")
    with pytest.raises(ValidationError):
        mapping.time_ns(RECORD, {"t": value})


@pytest.mark.parametrize(
    ("value", "unit", "ns"),
    [
        (1.5, "s", 1_500_000_000),
        (2, "ms", 2_000_000),
        (10**15, "ns", 10**15),
        ("2026-01-01T00:00:00+00:00", "s", 1767225600 * 10**9),
    ],
)
def test_a_time_is_read_in_its_unit(value: Any, unit: str, ns: int) -> None:
    assert FieldMapping(time_field="t", time_unit=unit).time_ns(RECORD, {"t": value}) == ns
