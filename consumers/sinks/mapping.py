"""Which fields of a record's JSON payload are dimensions, measures, the time and the keys.

Time-series sinks (Timestream, InfluxDB) need to know which fields identify a series
(dimensions / tags), which are values (measures / fields) and where the time is; DynamoDB
needs its key attributes.  A :class:`FieldMapping` says so once, and is loaded from URI
query options (``?dimensions=device,site&measures=temp&time=ts``) or, when that is not
enough, from a JSON or TOML file (``?mapping=PATH``) with the same field names.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shardline.errors import ConfigurationError, SerializationError, ValidationError
from shardline.records import ConsumedRecord, KafkaPosition, Position

__all__ = ["TIME_UNITS", "FieldMapping", "arrival_ns", "decode_object"]

TIME_UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
"""Nanoseconds per unit of a numeric time field."""


def decode_object(
    record: ConsumedRecord,
    *,
    parse_float: Callable[[str], Any] | None = None,
    parse_int: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """The record's payload as a JSON object; a poison record raises ``SerializationError``.

    Nesting deep enough to exhaust the parser is poison too (``RecursionError``): typed here,
    the record is rejected on its own instead of failing its whole sink call.
    ``parse_float`` and ``parse_int`` are ``json.loads``'s (DynamoDB takes numbers as
    ``Decimal``).
    """
    try:
        value = json.loads(record.data, parse_float=parse_float, parse_int=parse_int)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SerializationError(f"payload is not JSON ({type(exc).__name__})") from exc
    if not isinstance(value, dict):
        raise SerializationError(f"payload is a JSON {type(value).__name__}, not an object")
    return value


def _names(value: Any, option: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigurationError(f"mapping option {option!r} must be a list of field names")


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """How a JSON payload maps onto a time-series point or a keyed item.

    ``dimensions``: fields that identify the series (Timestream dimensions, InfluxDB tags).
    ``measures``: value fields; empty means every field that is not a dimension, the time,
    a key or the version field.  ``time_field``: where the time is (numbers in
    ``time_unit``, or ISO-8601 strings); ``None`` uses the record's arrival time, made
    distinct per record below the millisecond (:func:`arrival_ns`).
    ``measure_name``: Timestream measure name of multi-measure records, InfluxDB measurement.
    ``multi_measure``: one Timestream MULTI record per payload (default) or one record per
    measure.  ``keys``: DynamoDB key attributes (empty: the record identity is the key).
    ``version_field``: whole-number field that orders updates (default: the record position).
    """

    dimensions: tuple[str, ...] = ()
    measures: tuple[str, ...] = ()
    time_field: str | None = None
    time_unit: str = "ms"
    measure_name: str = "metrics"
    multi_measure: bool = True
    keys: tuple[str, ...] = ()
    version_field: str | None = None

    def __post_init__(self) -> None:
        if self.time_unit not in TIME_UNITS:
            raise ConfigurationError(f"time_unit must be one of {sorted(TIME_UNITS)}, not {self.time_unit!r}")
        if not self.measure_name:
            raise ConfigurationError("measure_name must not be empty")
        overlap = set(self.dimensions) & set(self.measures)
        if overlap:
            raise ConfigurationError(f"fields both dimension and measure: {sorted(overlap)}")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> FieldMapping:
        """Build from URI query options or a parsed file; ``mapping=PATH`` loads a file first."""
        values: dict[str, Any] = {}
        path = options.get("mapping")
        if path:
            values.update(cls._read_file(Path(str(path))))
        aliases = {
            "time": "time_field",
            "measurement": "measure_name",
            "key": "keys",
            "version": "version_field",
        }
        known = {f.name for f in fields(cls)}
        for raw_key, value in options.items():
            key = aliases.get(raw_key, raw_key)
            if key in known:
                values[key] = value
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key in ("dimensions", "measures", "keys"):
                kwargs[key] = _names(value, key)
            elif key == "multi_measure":
                kwargs[key] = (
                    value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
                )
            elif key in known:
                kwargs[key] = (
                    None if value in (None, "") and key in ("time_field", "version_field") else value
                )
        return cls(**kwargs)

    @staticmethod
    def _read_file(path: Path) -> dict[str, Any]:
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read mapping file {path}: {exc.strerror}") from exc
        try:
            loaded: Any = tomllib.loads(text.decode()) if path.suffix == ".toml" else json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"mapping file {path} is not valid: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigurationError(f"mapping file {path} must hold an object")
        return loaded

    def measures_of(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The measure fields present in the payload (all non-special fields by default)."""
        if self.measures:
            return {name: payload[name] for name in self.measures if payload.get(name) is not None}
        skip = {*self.dimensions, *self.keys, self.time_field, self.version_field}
        return {k: v for k, v in payload.items() if k not in skip and v is not None}

    def dimensions_of(self, payload: Mapping[str, Any]) -> dict[str, str]:
        """The dimension fields present in the payload, as the text that names the series.

        A nested object or list is a bad record: ``str()`` made Python repr text of it
        (``{'a': 1}``), a series no reader of the payload would name.  Booleans and numbers
        keep the text ``str()`` has always given them (``True``, ``1.0``), so a replay lands
        on the series of the original run.  The refusal names the dimension, not the value.
        """
        texts: dict[str, str] = {}
        for name in self.dimensions:
            value = payload.get(name)
            if value is None:
                continue
            if isinstance(value, dict | list):
                kind = "object" if isinstance(value, dict) else "array"
                raise ValidationError(f"dimension {name!r} is a JSON {kind}, not a scalar")
            texts[name] = str(value)
        return texts

    def time_ns(self, record: ConsumedRecord, payload: Mapping[str, Any]) -> int:
        """The point's time in nanoseconds since the epoch; poison when missing or malformed."""
        if self.time_field is None:
            return arrival_ns(record)
        value = payload.get(self.time_field)
        if isinstance(value, bool) or value is None:
            raise ValidationError(f"time field {self.time_field!r} missing or not a time")
        if isinstance(value, int | float):
            scaled = value * TIME_UNITS[self.time_unit]
            if isinstance(scaled, float) and not math.isfinite(scaled):
                # NaN or infinite, or finite but past a float once in nanoseconds (1e300 s)
                raise ValidationError(f"time field {self.time_field!r} is not a finite time")
            return int(scaled)
        if isinstance(value, str):
            try:
                return _datetime_ns(datetime.fromisoformat(value))
            except ValueError as exc:
                raise ValidationError(f"time field {self.time_field!r} is not ISO-8601") from exc
        raise ValidationError(f"time field {self.time_field!r} is a {type(value).__name__}")


def arrival_ns(record: ConsumedRecord) -> int:
    """The record's arrival time in nanoseconds, distinct for the records that share it.

    A time-series point is its series and its time: two points with both equal are one, and
    the later write replaces the earlier (Timestream's upsert, InfluxDB's overwrite).  Kinesis
    and Kafka give arrival times in whole milliseconds, shared by every user record of a KPL
    aggregate and by the plain records of one PutRecords request, so a device's readings sent
    together overwrote each other, the last one kept.  The free digits below the millisecond
    take the record's place there (:func:`_place_ns`): the same for every replay of the record,
    different for its neighbours.
    """
    if record.arrival_time is None:
        raise ValidationError("record has no arrival time and the mapping names no time field")
    moment = _datetime_ns(record.arrival_time)
    if moment % 1_000_000:
        return moment  # finer than milliseconds already: not a time these sources give
    return moment + _place_ns(record.position)


def _place_ns(position: Position) -> int:
    """The record's place below its arrival millisecond, from its position alone.

    Kafka: the offset modulo 10**6, distinct along a partition.  Kinesis: a digest of the
    sequence number plus the sub-sequence number, modulo 10**6.  The sub-sequence number alone
    (what earlier releases wrote) left the plain records of one request at the same nanosecond:
    each has sub-sequence number 0.  Sequence numbers are unique in a stream but their digits
    are not spread (neighbours differ only in high bits), hence the digest; adding the
    sub-sequence number keeps an aggregate's user records apart for certain.  Two records of
    different requests (or aggregates) can still meet, by a chance of about one in a million
    for each pair that shares a series and a millisecond.  The stream name is left out, so a
    record read by the stream's ARN or name lands on one point.
    """
    if isinstance(position, KafkaPosition):
        return position.offset % 1_000_000
    return (_sequence_digest(position.sequence_number) + position.sub_sequence_number) % 1_000_000


@functools.lru_cache(maxsize=1)
def _sequence_digest(sequence_number: str) -> int:
    """The sequence number's digest, as a number: kept for the next call, since the user
    records of an aggregate (read one after another) share their sequence number."""
    digest = hashlib.blake2b(sequence_number.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _datetime_ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValidationError("naive datetime: the time zone is unknown")
    # Exact integer arithmetic.  ``int(moment.timestamp())`` truncated toward zero, so a
    # time half a second before the epoch became half a second after it: two readings a
    # second apart landed on one point and the later overwrote the earlier.
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
