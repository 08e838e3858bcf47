"""Client-side validation: every rejection is typed and happens without a network call."""

from __future__ import annotations

import pytest

from shardline.errors import (
    InvalidDataError,
    InvalidExplicitHashKeyError,
    InvalidPartitionKeyError,
    RecordTooLargeError,
    ValidationError,
)
from shardline.limits import DEFAULT_MAX_RECORD_BYTES, HASH_KEY_MAX
from shardline.records import Record
from shardline.validation import (
    record_size,
    validate_data,
    validate_explicit_hash_key,
    validate_partition_key,
    validate_record,
    validate_record_size,
)


@pytest.mark.parametrize("key", ["k", "x" * 256, "ü" * 256, "🙂" * 256])
def test_valid_partition_keys(key: str) -> None:
    assert validate_partition_key(key) is key


@pytest.mark.parametrize("key", ["", "x" * 257, "ü" * 257, None, 5, b"key"])
def test_invalid_partition_keys(key: object) -> None:
    with pytest.raises(InvalidPartitionKeyError):
        validate_partition_key(key)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (HASH_KEY_MAX, HASH_KEY_MAX),
        ("0", 0),
        (str(HASH_KEY_MAX), HASH_KEY_MAX),
        ("42", 42),
        ("0" * 60 + "42", 42),  # leading zeros: the same number, normalised
        ("0" * 5000, 0),
    ],
)
def test_valid_explicit_hash_keys(value: object, expected: int) -> None:
    assert validate_explicit_hash_key(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        -1,
        HASH_KEY_MAX + 1,
        str(HASH_KEY_MAX + 1),
        "-1",
        "+1",
        "1e3",
        "1_000",
        "",
        " 1",
        "1\n",
        "٣",
        True,
        1.0,
        None,
        b"1",
        "9" * 40,
        "9" * 5000,  # int() itself refuses it (past sys.get_int_max_str_digits) with a bare ValueError
    ],
)
def test_invalid_explicit_hash_keys(value: object) -> None:
    with pytest.raises(InvalidExplicitHashKeyError):
        validate_explicit_hash_key(value)


def test_validate_data_accepts_bytes_like() -> None:
    data = b"abc"
    assert validate_data(data) is data
    assert validate_data(bytearray(b"abc")) == b"abc"
    assert type(validate_data(memoryview(b"abc"))) is bytes
    assert validate_data(b"") == b""


@pytest.mark.parametrize("data", ["text", 1, None, 1.5, ["a"], {"a": 1}])
def test_validate_data_rejects_non_bytes(data: object) -> None:
    with pytest.raises(InvalidDataError) as info:
        validate_data(data)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValidationError)


def test_record_size_counts_utf8_key_bytes() -> None:
    assert record_size("ab", b"123") == 5
    assert record_size("ü", b"") == 2


def test_validate_record_size_at_and_over_the_limit() -> None:
    key = "ü"  # two UTF-8 bytes
    assert validate_record_size(key, b"x" * (DEFAULT_MAX_RECORD_BYTES - 2)) == DEFAULT_MAX_RECORD_BYTES
    with pytest.raises(RecordTooLargeError):
        validate_record_size(key, b"x" * (DEFAULT_MAX_RECORD_BYTES - 1))
    with pytest.raises(RecordTooLargeError):
        validate_record_size("k", b"x" * 10, max_record_bytes=10)
    assert validate_record_size("k", b"x" * 9, max_record_bytes=10) == 10


def test_validate_record_returns_same_object_when_clean() -> None:
    record = Record(b"x", partition_key="k", explicit_hash_key=5)
    assert validate_record(record) is record


def test_validate_record_normalises_data_and_hash_key() -> None:
    record = Record(bytearray(b"x"), partition_key="k", explicit_hash_key="7")  # type: ignore[arg-type]
    clean = validate_record(record)
    assert clean.data == b"x" and type(clean.data) is bytes and clean.explicit_hash_key == 7


@pytest.mark.parametrize(
    ("record", "error"),
    [
        (Record(b"x"), InvalidPartitionKeyError),
        (Record(b"x", partition_key=""), InvalidPartitionKeyError),
        (Record("x", partition_key="k"), InvalidDataError),  # type: ignore[arg-type]
        (Record(b"x", partition_key="k", explicit_hash_key=-1), InvalidExplicitHashKeyError),
        (Record(b"x" * DEFAULT_MAX_RECORD_BYTES, partition_key="k"), RecordTooLargeError),
    ],
)
def test_validate_record_rejects(record: Record, error: type[Exception]) -> None:
    with pytest.raises(error):
        validate_record(record)


def test_validate_record_without_key_when_a_strategy_assigns_it() -> None:
    record = Record(b"x" * 10)
    assert validate_record(record, 10, require_partition_key=False) is record
    with pytest.raises(RecordTooLargeError):
        validate_record(Record(b"x" * 11), 10, require_partition_key=False)


def test_error_messages_never_contain_the_payload() -> None:
    secret = b"SECRET-PAYLOAD" * 100
    with pytest.raises(RecordTooLargeError) as info:
        validate_record_size("k", secret, max_record_bytes=10)
    assert "SECRET" not in str(info.value)
