"""``keys.field``: which field values make a partition key, and how.

``str(value)`` was the key, whatever the value: ``b'dev-1'`` for bytes, ``True``, ``{'a': 1}``,
``<bound method ...>``.  Each is Python's own spelling, so the same device keyed by another
writer of the stream (or from bytes rather than str) landed on another shard, out of order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest

from producers import keys
from shardline.errors import InvalidPartitionKeyError


class Site(Enum):
    NORTH = "north"

    def __str__(self) -> str:
        return self.value


@dataclass
class Point:
    x: int


class Reading:
    def __init__(self, device: Any) -> None:
        self.device = device

    def describe(self) -> str:
        return "a reading"


ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("dev-1", "dev-1"),
        (b"dev-1", "dev-1"),
        (bytearray(b"d\xc3\xa9v"), "dév"),
        (memoryview(b"dev-2"), "dev-2"),
        (42, "42"),
        (-7, "-7"),
        (2.5, "2.5"),
        (ID, str(ID)),
        (Decimal("1.10"), "1.10"),
        (Site.NORTH, "north"),
    ],
)
def test_values_that_spell_a_key(value: object, key: str) -> None:
    assert keys.resolve(keys.field("device"), {"device": value}) == keys.Key(key)
    assert keys.resolve(keys.field("device"), Reading(value)) == keys.Key(key)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"\xffdev", "bytes that are not UTF-8"),
        (True, "of type bool,"),
        (float("nan"), "is nan"),
        (float("inf"), "is inf"),
        ({"id": 1}, "of type dict,"),
        ([1, 2], "of type list,"),
        ((1,), "of type tuple,"),
        ({1}, "of type set,"),
        (Point(1), "of type Point,"),
        (object(), "of type object,"),
        (print, "of type builtin_function_or_method,"),
    ],
)
def test_values_that_do_not_are_the_records_typed_error(value: object, why: str) -> None:
    with pytest.raises(InvalidPartitionKeyError, match=why) as refused:
        keys.field("device")({"device": value})
    assert "'device'" in str(refused.value)


def test_a_method_is_not_a_field() -> None:
    """An attribute lookup finds methods too: field("describe") keyed every reading
    "<bound method Reading.describe of ...>"."""
    with pytest.raises(InvalidPartitionKeyError, match="'describe'"):
        keys.field("describe")(Reading("dev-1"))
    with pytest.raises(InvalidPartitionKeyError, match="'count'"):
        keys.field("count")([1, 2])
