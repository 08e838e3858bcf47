"""Partition-key strategies: each one, and their composition."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from producers import keys
from producers.kinesis import KinesisProducer
from shardline.errors import ConfigurationError, InvalidPartitionKeyError
from shardline.limits import HASH_KEY_MAX
from tests.unit.producers.fake_kinesis import FakeKinesis


@dataclass
class Reading:
    device_id: str
    value: float


def test_field_reads_mapping_items_and_attributes() -> None:
    strategy = keys.field("device_id")
    assert keys.resolve(strategy, {"device_id": "dev-1"}) == keys.Key("dev-1")
    assert keys.resolve(strategy, Reading("dev-2", 1.0)) == keys.Key("dev-2")
    assert keys.resolve(strategy, {"device_id": 42}) == keys.Key("42")


def test_field_missing_is_a_typed_error() -> None:
    with pytest.raises(InvalidPartitionKeyError):
        keys.field("device_id")({"other": 1})
    with pytest.raises(InvalidPartitionKeyError):
        keys.field("device_id")(object())


def test_random_keys_differ() -> None:
    strategy = keys.random()
    produced = {keys.resolve(strategy, None).partition_key for _ in range(100)}
    assert len(produced) == 100


def test_round_robin_cycles_over_even_ranges_with_explicit_hash_keys() -> None:
    strategy = keys.round_robin(4)
    chosen = [keys.resolve(strategy, None) for _ in range(8)]
    hash_keys = [k.explicit_hash_key for k in chosen]
    assert all(h is not None for h in hash_keys)
    quarter = (HASH_KEY_MAX + 1) // 4
    slots = [h // quarter for h in hash_keys if h is not None]
    assert slots == [0, 1, 2, 3, 0, 1, 2, 3]


def test_round_robin_rebinds_to_new_ranges() -> None:
    strategy = keys.round_robin(4)
    assert isinstance(strategy, keys.RangeAware)
    strategy.bind_ranges([(0, 9), (10, 19)])
    assert [keys.resolve(strategy, None).explicit_hash_key for _ in range(3)] == [4, 14, 4]


def test_salted_spreads_a_hot_key_over_buckets_and_leaves_others() -> None:
    strategy = keys.salted(keys.field("device_id"), 3, hot_keys=["hot"])
    hot = [keys.resolve(strategy, {"device_id": "hot"}).partition_key for _ in range(6)]
    assert sorted(set(hot)) == ["hot#0", "hot#1", "hot#2"]
    assert keys.resolve(strategy, {"device_id": "cold"}).partition_key == "cold"


def test_callable_and_fallback_compose() -> None:
    strategy = keys.fallback(keys.field("device_id"), keys.call(lambda value: f"site-{value['site']}"))
    assert keys.resolve(strategy, {"device_id": "d"}).partition_key == "d"
    assert keys.resolve(strategy, {"site": 7}).partition_key == "site-7"


def test_salted_round_robin_keeps_explicit_hash_keys() -> None:
    strategy = keys.salted(keys.round_robin(2), 2)
    first, second = keys.resolve(strategy, None), keys.resolve(strategy, None)
    assert first.explicit_hash_key != second.explicit_hash_key
    assert first.partition_key.endswith("#0") and second.partition_key.endswith("#1")


def test_strategy_returning_a_non_string_is_rejected() -> None:
    def numeric(value: object) -> Any:
        return 5

    with pytest.raises(InvalidPartitionKeyError):
        keys.resolve(numeric, None)


@pytest.mark.parametrize(
    "build",
    [
        lambda: keys.field(""),
        lambda: keys.round_robin(0),
        lambda: keys.round_robin([(5, 1)]),
        lambda: keys.salted(keys.random(), 0),
        lambda: keys.fallback(),
        lambda: keys.constant(""),
    ],
)
def test_bad_strategy_configuration_is_rejected(build: object) -> None:
    with pytest.raises(ConfigurationError):
        build()  # type: ignore[operator]


async def test_a_refused_key_made_by_a_strategy_names_the_strategy() -> None:
    """A device id of 255 characters is a valid key; salted, it is 257: the error says why."""
    producer = KinesisProducer(
        "s",
        client=FakeKinesis(),
        key_strategy=keys.salted(keys.field("device"), 8),
        serializer=lambda value: json.dumps(value).encode(),
    )
    async with producer:
        with pytest.raises(InvalidPartitionKeyError, match=r"257 \(made by the key strategy keys\.salted"):
            await producer.send({"device": "d" * 255})
        with pytest.raises(InvalidPartitionKeyError, match=r"got 257$"):  # a key given as it is
            await producer.send(b"x", partition_key="k" * 257)
