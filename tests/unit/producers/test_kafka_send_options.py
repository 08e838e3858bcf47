"""send()'s partition, headers and timestamp: a value librdkafka cannot take is a
ValidationError before anything is queued, not an OverflowError or TypeError from produce()."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from producers.kafka import KafkaProducer
from shardline.errors import ValidationError


@pytest.mark.parametrize(
    ("partition", "headers", "timestamp"),
    [
        (2**31, None, None),  # past int32
        (-1, None, None),
        (True, None, None),
        (None, 42, None),  # not iterable
        (None, [("a", b"1", "extra")], None),  # not pairs
        (None, ["ab"], None),  # a string is not a pair of name and value
        (None, {"a": "text"}, None),  # a str value, not bytes
        (None, None, 2**63),  # past int64
        (None, None, -5),
        (None, None, datetime(1960, 1, 1, tzinfo=UTC)),  # before the epoch
        (None, None, 1.5),
    ],
)
def test_a_value_librdkafka_cannot_take_is_a_validation_error(
    partition: Any, headers: Any, timestamp: Any
) -> None:
    with pytest.raises(ValidationError):
        KafkaProducer._extra_kwargs(partition, headers, timestamp)


def test_good_values_pass_as_librdkafka_takes_them() -> None:
    assert KafkaProducer._extra_kwargs(
        2**31 - 1, {"a": b"1", "b": None}, datetime(2026, 1, 1, tzinfo=UTC)
    ) == {"partition": 2**31 - 1, "headers": [("a", b"1"), ("b", None)], "timestamp": 1767225600000}
    assert KafkaProducer._extra_kwargs(None, [("a", b"1")], 2**63 - 1) == {
        "headers": [("a", b"1")],
        "timestamp": 2**63 - 1,
    }
