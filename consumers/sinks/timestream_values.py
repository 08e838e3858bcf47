"""What Timestream for LiveAnalytics takes in a record, checked in one place before the call.

Every text and number of a record comes from its payload, which devices write.  What
Timestream, or botocore's parameter validation before it, refuses for a whole WriteRecords
call (an empty measure value, a value past its type's range, ``nan`` and ``inf``, a text over
its length) is refused here for the record alone: one record no longer failed the call of its
neighbours (which the pipeline then bisected to find it), nor reached a validation message that
quotes the value.  Refusals are :class:`~shardline.errors.ValidationError` naming the fault,
never the text.
"""

from __future__ import annotations

import math
from typing import Any

from shardline.errors import ValidationError
from shardline.limits import INT64_MAX, INT64_MIN, TIMESTREAM_MEASURE_VALUE_MAX_BYTES

__all__ = ["measure_value", "time_text"]


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
