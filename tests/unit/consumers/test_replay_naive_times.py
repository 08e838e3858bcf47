"""Timezone-naive range times given to the planning and resolving functions are refused.

The command line takes aware times only, but the functions are public: ``plan_kinesis`` over
naive times ended in a bare ``TypeError`` (its windows are compared with the UTC clock), and
``ranges_for_times`` read naive times in the machine's own zone, moving the Kafka range by its
UTC offset without a word.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from consumers.kafka import ranges_for_times
from consumers.replay.plan import plan_kinesis
from shardline.errors import ConfigurationError, ValidationError

NAIVE_END = datetime(2024, 5, 2)
NAIVE_START = NAIVE_END - timedelta(days=1)


class _NoCalls:
    """Any call fails the test: the times are refused before the first one."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{name} was called with naive range times")


async def test_a_kinesis_plan_over_naive_times_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        await plan_kinesis(_NoCalls(), "s", NAIVE_START, NAIVE_END, 2, shard_ids=["shardId-0"])


def test_a_kafka_time_range_over_naive_times_is_refused() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        ranges_for_times(_NoCalls(), "t", NAIVE_START, NAIVE_END, partitions=[0])
