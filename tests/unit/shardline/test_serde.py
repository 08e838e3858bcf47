"""Serializers: compact UTF-8 JSON, bytes pass-through, text; typed errors that never quote data."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardline.errors import SerializationError, ValidationError
from shardline.serde import (
    Deserializer,
    Serializer,
    identity,
    json_deserializer,
    json_serializer,
    text_deserializer,
    text_serializer,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


def test_json_is_compact_utf8() -> None:
    assert json_serializer({"device": "ü", "t": [1, 2.5, None]}) == '{"device":"ü","t":[1,2.5,null]}'.encode()


@given(json_values)
def test_json_round_trip(value: Any) -> None:
    assert json_deserializer(json_serializer(value)) == value


@pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes", math.nan, math.inf, {"k": object()}])
def test_json_serializer_rejects_with_a_typed_error(value: Any) -> None:
    with pytest.raises(SerializationError) as info:
        json_serializer(value)
    assert isinstance(info.value, ValidationError)


def test_json_serializer_rejects_cycles() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(SerializationError):
        json_serializer(cycle)


@pytest.mark.parametrize("data", [b"SECRET-not-json", b"\xff\xfe", b"", b'{"a":'])
def test_json_deserializer_errors_do_not_quote_the_record(data: bytes) -> None:
    with pytest.raises(SerializationError) as info:
        json_deserializer(data)
    assert "SECRET" not in str(info.value)


def test_json_deserializer_accepts_memoryview() -> None:
    assert json_deserializer(memoryview(b"[1]")) == [1]  # type: ignore[arg-type]


def test_identity() -> None:
    data = b"raw"
    assert identity(data) is data
    assert identity(bytearray(b"raw")) == b"raw" and type(identity(memoryview(b"x"))) is bytes
    for bad in ("text", 1, None):
        with pytest.raises(SerializationError):
            identity(bad)


def test_text() -> None:
    assert text_serializer("ü") == b"\xc3\xbc"
    assert text_deserializer(b"\xc3\xbc") == "ü"
    with pytest.raises(SerializationError):
        text_serializer(b"bytes")
    with pytest.raises(SerializationError):
        text_serializer("\ud800")
    with pytest.raises(SerializationError):
        text_deserializer(b"\xff")


def test_serializers_fit_the_aliases() -> None:
    serializers: list[Serializer] = [json_serializer, identity, text_serializer]
    deserializers: list[Deserializer] = [json_deserializer, text_deserializer]
    assert all(callable(s) for s in serializers + deserializers)
