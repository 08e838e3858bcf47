"""send_many's columns: one value or one key in place of a list is refused, not iterated."""

from __future__ import annotations

import re
from typing import Any

import pytest

from shardline.errors import ValidationError
from shardline.validation import batch_columns


@pytest.mark.parametrize(
    ("values", "keys", "says"),
    [
        (b"abc", None, "iterable of values, not a bytes"),  # its bytes would be three records
        ("abc", None, "iterable of values, not a str"),
        (5, None, "iterable of values, not a int"),
        ([b"a", b"b", b"c"], "abc", "one key per value (a list), not a str"),  # 'a', 'b', 'c' as keys
        ([b"a"], b"k", "one key per value (a list), not a bytes"),
        ([b"a"], 5, "one key per value (a list), not a int"),
        ([b"a"], ["k1", "k2"], "got 1 values but 2 keys"),
    ],
)
def test_what_is_not_a_pair_of_columns_is_refused(values: Any, keys: Any, says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        batch_columns(values, keys, copy=True)


def test_lists_are_copied_only_when_asked_and_iterables_are_read_once() -> None:
    values, keys = [b"a", b"b"], ["k1", "k2"]
    shared = batch_columns(values, keys, copy=False)
    assert shared[0] is values and shared[1] is keys
    copied = batch_columns(values, keys, copy=True)
    assert copied == (values, keys) and copied[0] is not values and copied[1] is not keys
    assert batch_columns((v for v in values), iter(keys), copy=False) == ([b"a", b"b"], ["k1", "k2"])
    assert batch_columns(values, None, copy=False) == (values, [None, None])
