"""A GetRecords answer's lag and child shards are untrusted bytes too (the polling reader).

The fan-out reader checks both before its position moves; the polling reader took them as they
came: a ``MillisBehindLatest`` past the API's Long raised a bare ``OverflowError`` (``float()``
of it) and stopped the run, and a ``ChildShards`` member without a hash-key range, with one
that is not decimal or with a shard id that is not text raised ``KeyError`` / ``ValueError`` /
``AttributeError`` at the shard's end, after its records were handed on.  Such an answer is
now not a Kinesis answer: retried from a fresh iterator a bounded number of times.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from consumers.kinesis import PollingShardReader, ReaderConfig
from consumers.kinesis.batch import ShardBatch
from shardline.errors import TransientServiceError
from tests.unit.consumers.kinesis.test_kinesis_polling_unit import FakeKinesis, InstantSleep

BOUND = 5.0
_RANGE = {"StartingHashKey": "0", "EndingHashKey": str(2**128 - 1)}
BAD_CHILDREN: list[Any] = [
    [{"ShardId": "shard-1", "ParentShards": ["shard-0"]}],  # no hash-key range
    [{"ShardId": "shard-1", "ParentShards": ["shard-0"], "HashKeyRange": {"StartingHashKey": "x"}}],
    [{"ShardId": 7, "ParentShards": ["shard-0"], "HashKeyRange": _RANGE}],
    [{"ShardId": "shard-1", "ParentShards": [None], "HashKeyRange": _RANGE}],
    [{"ShardId": "shard-1", "HashKeyRange": {"StartingHashKey": "5", "EndingHashKey": "4"}}],
    "shard-1",
]


class FirstAnswersBad(FakeKinesis):
    """The first ``bad`` GetRecords answers carry ``member`` = ``value``."""

    def __init__(self, member: str, value: Any, bad: int) -> None:
        super().__init__([("a", b"x"), ("b", b"y")])
        self.member, self.value, self.bad = member, value, bad

    async def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        response = await super().get_records(ShardIterator, Limit)
        if self.get_records_calls <= self.bad:
            response[self.member] = self.value
            if self.member == "ChildShards":
                response.pop("NextShardIterator", None)  # where Kinesis puts children: the end
        return response


async def _batches(kinesis: FakeKinesis, config: ReaderConfig | None = None) -> list[ShardBatch]:
    reader = PollingShardReader(
        kinesis, "s", "shard-0", stop_at_tip=True, config=config, sleep=InstantSleep()
    )

    async def read() -> list[ShardBatch]:
        return [batch async for batch in reader]

    return await asyncio.wait_for(read(), BOUND)


async def _read(kinesis: FakeKinesis, config: ReaderConfig | None = None) -> list[bytes]:
    return [r.data for batch in await _batches(kinesis, config) for r in batch.records]


@pytest.mark.parametrize("lag", [2**63, -(2**63) - 1, 10**400])
async def test_a_lag_past_a_long_is_retried_not_a_crash(lag: int) -> None:
    kinesis = FirstAnswersBad("MillisBehindLatest", lag, bad=1)
    batches = await _batches(kinesis)
    assert [r.data for batch in batches for r in batch.records] == [b"x", b"y"]
    assert all(batch.millis_behind_latest == 0 for batch in batches)  # the retried answer's


@pytest.mark.parametrize("children", BAD_CHILDREN)
async def test_malformed_child_shards_are_retried_not_a_crash(children: Any) -> None:
    kinesis = FirstAnswersBad("ChildShards", children, bad=1)
    assert await _read(kinesis) == [b"x", b"y"]
    assert kinesis.get_records_calls >= 2


async def test_answers_that_stay_malformed_end_in_a_transient_error_naming_the_shard() -> None:
    kinesis = FirstAnswersBad("ChildShards", BAD_CHILDREN[0], bad=1_000)
    with pytest.raises(TransientServiceError, match="shard-0"):
        await _read(kinesis, ReaderConfig(max_transient_retries=3))
