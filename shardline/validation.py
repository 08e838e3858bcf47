"""Client-side validation of what Kinesis (or Kafka) would reject, before any network call.

A bad record caught here gets a typed :mod:`shardline.errors` exception at ``send()`` time,
instead of failing a whole PutRecords batch later (and the records batched with it).
These functions run once per record on the producer's hot path, so each is a few type and
length checks with no allocation in the common case.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any, TypeGuard

from shardline.errors import (
    InvalidDataError,
    InvalidExplicitHashKeyError,
    InvalidPartitionKeyError,
    RecordTooLargeError,
    ValidationError,
)
from shardline.limits import (
    DEFAULT_MAX_RECORD_BYTES,
    HASH_KEY_MAX,
    KAFKA_TOPIC_MAX_CHARS,
    PARTITION_KEY_MAX_CHARS,
    PARTITION_KEY_MIN_CHARS,
)
from shardline.records import Record

__all__ = [
    "batch_columns",
    "is_decimal",
    "is_text",
    "record_size",
    "require_text",
    "validate_data",
    "validate_explicit_hash_key",
    "validate_partition_key",
    "validate_record",
    "validate_record_size",
    "validate_topic_name",
]

_HASH_KEY_DIGITS = len(str(HASH_KEY_MAX))
"""Decimal digits of the largest hash key (39): a longer str of digits is out of range unless
it starts with zeros."""

_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def is_decimal(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a str of ASCII digits: a sequence number, an offset, a hash key.

    ``str.isdigit`` alone also takes ``"²"`` and ``"٣"``, which ``int()`` and every store
    refuse later, far from the input that carried them.
    """
    return isinstance(value, str) and value.isascii() and value.isdigit()


def is_text(value: str) -> bool:
    """Whether ``value`` has a UTF-8 form: no lone surrogate (ASCII is checked at C speed).

    A str can hold lone surrogates (from JSON ``\\ud800`` escapes, ``surrogateescape``
    decoding), which no wire format here can carry: encoding one raises.
    """
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def require_text(value: str, what: str, error: type[ValidationError] = ValidationError) -> str:
    """Return ``value`` if it has a UTF-8 form, else raise ``error`` naming ``what``.

    Checked when a record is accepted: past that point the text is encoded by a background
    task (an aggregate's key table, a request body, librdkafka), where it would fail every
    record buffered with it instead of the one that carried it.
    """
    if not is_text(value):
        position = next(n for n, char in enumerate(value) if "\ud800" <= char <= "\udfff")
        raise error(f"{what} is not Unicode text: character {position} is a lone surrogate")
    return value


def validate_partition_key(key: object) -> str:
    """Return ``key`` if Kinesis accepts it: a str of 1..256 Unicode characters."""
    if not isinstance(key, str):
        raise InvalidPartitionKeyError(f"partition key must be str, not {type(key).__name__}")
    if not PARTITION_KEY_MIN_CHARS <= len(key) <= PARTITION_KEY_MAX_CHARS:
        raise InvalidPartitionKeyError(
            f"partition key must have {PARTITION_KEY_MIN_CHARS}..{PARTITION_KEY_MAX_CHARS} "
            f"characters, got {len(key)}"
        )
    return require_text(key, "partition key", InvalidPartitionKeyError)


def validate_explicit_hash_key(value: object) -> int:
    """Return the explicit hash key as an int in 0..2**128-1 (a decimal str is accepted)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidExplicitHashKeyError(
            f"explicit hash key must be an int or decimal str, not {type(value).__name__}"
        )
    if isinstance(value, str):
        if not is_decimal(value):
            raise InvalidExplicitHashKeyError("explicit hash key str must be a non-negative decimal number")
        if len(value) > _HASH_KEY_DIGITS:
            # Past 4,300 digits int() raises a bare ValueError (sys.get_int_max_str_digits);
            # below that it converts a number of thousands of digits only to refuse it.
            value = value.lstrip("0") or "0"
            if len(value) > _HASH_KEY_DIGITS:
                raise InvalidExplicitHashKeyError("explicit hash key must be in 0..2**128-1")
        value = int(value)
    if not 0 <= value <= HASH_KEY_MAX:
        raise InvalidExplicitHashKeyError("explicit hash key must be in 0..2**128-1")
    return value


def validate_topic_name(name: object) -> str:
    """Return ``name`` if Kafka accepts it as a topic: 1..249 ASCII letters, digits, ``.``,
    ``_`` and ``-``, and neither ``.`` nor ``..`` (the broker's own rule).

    Checked once, when a client is made for the topic: librdkafka takes any name.  A message
    to one the broker refuses fails only when its delivery times out; a consumer subscribed to
    one joins its group and reads nothing, with no error.  The message
    names the position of the first bad character, not the name (it may be anything).
    """
    if not isinstance(name, str):
        raise ValidationError(f"topic name must be a str, not {type(name).__name__}")
    if not 0 < len(name) <= KAFKA_TOPIC_MAX_CHARS:
        raise ValidationError(f"topic name must have 1..{KAFKA_TOPIC_MAX_CHARS} characters, got {len(name)}")
    if name in (".", ".."):
        raise ValidationError("topic name must not be '.' or '..'")
    if name.startswith("^"):
        # librdkafka's consumer would subscribe to it as a regular expression
        raise ValidationError("topic name is a pattern ('^...'): name each topic instead")
    if not _TOPIC_CHARS.issuperset(name):
        position = next(n for n, char in enumerate(name) if char not in _TOPIC_CHARS)
        raise ValidationError(
            "topic name may hold only ASCII letters, digits, '.', '_' and '-': "
            f"character {position} is not one"
        )
    return name


def validate_data(data: object) -> bytes:
    """Return the record data as bytes; bytearray and memoryview are copied to bytes.

    str is refused on purpose: which encoding to use is the caller's (or a serializer's) choice.
    """
    if type(data) is bytes:
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise InvalidDataError(
        f"record data must be bytes, not {type(data).__name__}; pass a serializer for other types"
    )


def record_size(partition_key: str, data: bytes) -> int:
    """What Kinesis counts against the record size limit: data plus UTF-8 partition key bytes."""
    key_bytes = len(partition_key) if partition_key.isascii() else len(partition_key.encode("utf-8"))
    return len(data) + key_bytes


def validate_record_size(
    partition_key: str, data: bytes, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> int:
    """Raise :class:`RecordTooLargeError` over ``max_record_bytes``; return the counted size."""
    size = record_size(partition_key, data)
    if size > max_record_bytes:
        raise RecordTooLargeError(
            f"record of {size} bytes (data + partition key) exceeds the maximum of {max_record_bytes}"
        )
    return size


def validate_record(
    record: Record,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    *,
    require_partition_key: bool = True,
) -> Record:
    """Validate every field Kinesis checks and return the record with normalised values.

    The same object comes back when nothing needed normalising (bytes data, int hash key).
    Pass ``require_partition_key=False`` for records whose key a producer strategy assigns
    later; their size is then checked on the data alone.
    """
    data = validate_data(record.data)
    key = record.partition_key
    if key is not None or require_partition_key:
        key = validate_partition_key(key)
    ehk = record.explicit_hash_key
    if ehk is not None:
        ehk = validate_explicit_hash_key(ehk)
    validate_record_size(key or "", data, max_record_bytes)
    if data is record.data and ehk is record.explicit_hash_key:
        return record
    return replace(record, data=data, explicit_hash_key=ehk)


_ONE_VALUE = (str, bytes, bytearray, memoryview)


def batch_columns(values: object, keys: object, *, copy: bool) -> tuple[list[Any], list[Any]]:
    """``send_many``'s values and keys as two lists of one length (keys ``None`` each when
    none are given); :class:`ValidationError` for anything else, before any record is read.

    A str or bytes is one value (or one key), not a batch: iterating it would send its
    characters as records (or use them as keys).  ``copy``: lists the caller gave are copied
    (a producer that keeps them past the call), otherwise used as they are.
    """
    if isinstance(values, _ONE_VALUE) or not isinstance(values, Iterable):
        raise ValidationError(f"send_many takes an iterable of values, not a {type(values).__name__}")
    items = list(values) if copy or type(values) is not list else values
    if keys is None:
        return items, [None] * len(items)
    if isinstance(keys, _ONE_VALUE) or not isinstance(keys, Iterable):
        raise ValidationError(f"send_many takes one key per value (a list), not a {type(keys).__name__}")
    given = list(keys) if copy or type(keys) is not list else keys
    if len(given) != len(items):
        raise ValidationError(f"send_many got {len(items)} values but {len(given)} keys")
    return items, given
