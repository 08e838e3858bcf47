"""What Timestream for LiveAnalytics takes in a record, checked in one place before the call.

Every text and number of a record comes from its payload, which devices write.  What
Timestream, or botocore's parameter validation before it, refuses for a whole WriteRecords
call (an empty measure value, a value past its type's range, ``nan`` and ``inf``, a text over
its length, a measure name that is empty or one of Timestream's own column names) is refused
here for the record alone: one record no longer failed the call of its neighbours (which the
pipeline then bisected to find it), nor reached a validation message that quotes the value.
Refusals are :class:`~shardline.errors.ValidationError` naming the fault, never the text (a
measure name is a payload key, so it is not named either).  The names the mapping configures
(dimension names, the multi-measure name) are checked once, when the sink is built
(:func:`check_mapping`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from consumers.sinks.mapping import FieldMapping
from shardline.errors import ConfigurationError, ValidationError
from shardline.limits import (
    INT64_MAX,
    INT64_MIN,
    TIMESTREAM_DIMENSION_NAME_MAX_BYTES,
    TIMESTREAM_DIMENSIONS_MAX,
    TIMESTREAM_DIMENSIONS_MAX_BYTES,
    TIMESTREAM_MEASURE_NAME_MAX_BYTES,
    TIMESTREAM_MEASURE_VALUE_MAX_BYTES,
)

__all__ = ["check_mapping", "dimensions", "measure_name", "measure_value", "time_text", "utf8_size"]

_SYSTEM_COLUMNS = frozenset({"time", "measure_name", "measure_value"})
_RESERVED_PREFIXES = ("ts_", "measure_value")
"""Timestream's naming constraints for a table's columns (dimension names, and the measure
names of MULTI records, which become columns): none of its own columns' names, no ``ts_`` or
``measure_value`` prefix (``measure_value::double`` is a column of single-measure tables), no
colon."""


def utf8_size(text: str, what: str) -> int:
    """Bytes of ``text`` in UTF-8; a lone surrogate (a JSON ``"\\ud800"`` escape) has no UTF-8
    form and is refused."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValidationError(f"{what} is not valid Unicode (a lone surrogate)") from exc


def measure_value(value: Any) -> tuple[str, str]:
    """(Value, Type) of a JSON value as a Timestream measure, or the record's refusal."""
    if isinstance(value, bool):
        return ("true" if value else "false"), "BOOLEAN"
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValidationError("integer measure value is outside BIGINT (int64)")
        return str(value), "BIGINT"
    if isinstance(value, float):
        # json.loads reads NaN, Infinity and numbers past a double (1e400) as non-finite floats
        if not math.isfinite(value):
            raise ValidationError("measure value is not a finite DOUBLE")
        return repr(value), "DOUBLE"
    if isinstance(value, str):
        if not value:
            raise ValidationError("measure value is an empty string")
        if utf8_size(value, "measure value") > TIMESTREAM_MEASURE_VALUE_MAX_BYTES:
            raise ValidationError(f"measure value is over {TIMESTREAM_MEASURE_VALUE_MAX_BYTES} bytes")
        return value, "VARCHAR"
    raise ValidationError(f"measure of type {type(value).__name__} is not supported")


def time_text(nanoseconds: int) -> str:
    """The record's ``Time``: an int64 of nanoseconds (a longer text fails the call as a whole)."""
    if not INT64_MIN <= nanoseconds <= INT64_MAX:
        raise ValidationError("time is outside int64 nanoseconds")
    return str(nanoseconds)


def _name_fault(name: str, max_bytes: int, *, column: bool) -> str | None:
    """What Timestream refuses in a dimension or measure name (``None``: nothing)."""
    if not name:
        return "is empty"
    if utf8_size(name, "name") > max_bytes:
        return f"is over {max_bytes} bytes"
    if column and (name in _SYSTEM_COLUMNS or name.startswith(_RESERVED_PREFIXES) or ":" in name):
        return "is reserved by Timestream (time, measure_name, measure_value*, ts_*, or a colon)"
    return None


def measure_name(name: str, *, column: bool) -> str:
    """A payload key as a measure name; ``column`` for the names of a MULTI record's values."""
    fault = _name_fault(name, TIMESTREAM_MEASURE_NAME_MAX_BYTES, column=column)
    if fault is not None:
        raise ValidationError(f"a measure name {fault}")
    return name


def dimensions(values: Mapping[str, str]) -> list[dict[str, str]]:
    """The record's dimensions (names from the mapping, checked by :func:`check_mapping`)."""
    size = 0
    for name, value in values.items():
        if not value:
            raise ValidationError(f"dimension {name!r} is empty")
        size += utf8_size(name, "dimension name") + utf8_size(value, f"dimension {name!r}")
    if size > TIMESTREAM_DIMENSIONS_MAX_BYTES:
        raise ValidationError(f"dimensions are over {TIMESTREAM_DIMENSIONS_MAX_BYTES} bytes together")
    return [{"Name": name, "Value": value} for name, value in values.items()]


def check_mapping(mapping: FieldMapping) -> None:
    """The names a mapping gives Timestream, refused when the sink is built rather than in
    every record's call."""
    if len(mapping.dimensions) > TIMESTREAM_DIMENSIONS_MAX:
        raise ConfigurationError(f"Timestream takes at most {TIMESTREAM_DIMENSIONS_MAX} dimensions")
    named = [(name, "dimension", TIMESTREAM_DIMENSION_NAME_MAX_BYTES, True) for name in mapping.dimensions]
    named += [
        (name, "measure", TIMESTREAM_MEASURE_NAME_MAX_BYTES, mapping.multi_measure)
        for name in mapping.measures
    ]
    if mapping.multi_measure:
        named.append((mapping.measure_name, "measure_name", TIMESTREAM_MEASURE_NAME_MAX_BYTES, False))
    for name, what, max_bytes, column in named:
        try:
            fault = _name_fault(name, max_bytes, column=column)
        except ValidationError as exc:
            raise ConfigurationError(f"Timestream {what} name {name!r} is not valid Unicode") from exc
        if fault is not None:
            raise ConfigurationError(f"Timestream {what} name {name!r} {fault}")
