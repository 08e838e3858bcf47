"""Serializers are plain callables: ``Serializer`` turns a value into record bytes,
``Deserializer`` turns record bytes back into a value.

Producers take a serializer so callers can send objects; consumers and sinks take a
deserializer.  Any callable with the right shape fits (msgpack, protobuf, Avro...); the ones
here cover the common cases.  Failures raise :class:`~shardline.errors.SerializationError`
(a :class:`~shardline.errors.ValidationError`, so a bad value is refused before any network
call) and never quote the value itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeAlias

from shardline.errors import SerializationError, ShardlineError
from shardline.validation import validate_data

__all__ = [
    "Deserializer",
    "Serializer",
    "identity",
    "json_deserializer",
    "json_serializer",
    "serialize",
    "text_deserializer",
    "text_serializer",
]

Serializer: TypeAlias = Callable[[Any], bytes]
Deserializer: TypeAlias = Callable[[bytes], Any]

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_decoder = json.JSONDecoder()


def serialize(serializer: Serializer, value: Any) -> bytes:
    """``serializer(value)`` as record bytes, for a producer's ``serializer`` option.

    A failure is a :class:`~shardline.errors.SerializationError` naming the value's type and
    the exception's, chained to it; its message is left out of ours, since a serializer's
    complaint often quotes the value (``invalid literal for int(): 'card-4111...'``).
    """
    try:
        data = serializer(value)
    except ShardlineError:
        raise
    except Exception as exc:
        raise SerializationError(
            f"serializer failed on a {type(value).__name__} ({type(exc).__name__})"
        ) from exc
    return validate_data(data)


def json_serializer(value: Any) -> bytes:
    """Compact UTF-8 JSON (no spaces, non-ASCII kept as is, NaN/Infinity refused)."""
    try:
        return _encoder.encode(value).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(
            f"cannot serialise {type(value).__name__} to JSON: {type(exc).__name__}"
        ) from exc


def json_deserializer(data: bytes) -> Any:
    """Parse UTF-8 JSON record bytes."""
    try:
        return _decoder.decode(bytes(data).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SerializationError(f"record is not UTF-8 (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise SerializationError(f"record is not JSON: {exc.msg} at char {exc.pos}") from exc
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(f"record is not JSON: {type(exc).__name__}") from exc


def identity(value: Any) -> bytes:
    """For data that already is bytes; bytearray and memoryview are copied to bytes."""
    if type(value) is bytes:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise SerializationError(f"expected bytes, got {type(value).__name__}; pass a serializer")


def text_serializer(value: Any) -> bytes:
    """A str as UTF-8 bytes."""
    if not isinstance(value, str):
        raise SerializationError(f"expected str, got {type(value).__name__}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise SerializationError(f"str is not encodable as UTF-8 (char {exc.start})") from exc


def text_deserializer(data: bytes) -> str:
    """UTF-8 record bytes as a str."""
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SerializationError(f"record is not UTF-8 (byte {exc.start})") from exc
