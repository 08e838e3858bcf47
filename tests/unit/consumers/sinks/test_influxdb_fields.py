"""Field values InfluxDB would refuse are rejected per record, before the write: a refused
line fails the whole call, which the pipeline then bisects to find it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.sinks.influxdb import field_value, to_line
from consumers.sinks.mapping import FieldMapping
from shardline.errors import ValidationError
from shardline.records import ConsumedRecord, KinesisPosition


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


def test_payload_text_without_a_utf8_form_is_a_validation_error_not_a_unicode_error() -> None:
    # JSON lets a payload carry "\ud800"; its line has no UTF-8 form.  A ValidationError is
    # dead-lettered at once; a UnicodeEncodeError was bisected three times first.
    record = ConsumedRecord(
        b'{"device": "d1", "note": "\\ud800"}',
        "k",
        KinesisPosition("s", "shardId-000000000000", "1"),
        arrival_time=datetime(2024, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(ValidationError, match="no UTF-8 form") as caught:
        to_line(record, FieldMapping(dimensions=("device",)))
    assert "\ud800" not in str(caught.value)
