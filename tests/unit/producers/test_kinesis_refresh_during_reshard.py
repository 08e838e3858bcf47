"""The shard-map refresh failing or hanging while the stream is resharded under a producer.

A refresh that cannot complete (a ListShards call that never answers, through a client
without timeouts) must fail only the records that needed it, within their time to live, and
leave the producer sending and refreshing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from producers import KinesisProducer
from shardline.errors import DeliveryError, TransientServiceError
from tests.unit.producers.fake_kinesis import FakeKinesis

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}
BOUND = 5.0  # seconds: only there so that a hang fails instead of sticking


async def test_a_list_shards_call_that_never_answers_fails_the_misplaced_records_within_their_ttl() -> None:
    fake = FakeKinesis(shards=1)
    producer = KinesisProducer("s", client=fake, record_ttl=0.5, **FAST)
    await producer.start()
    fake.split("shardId-000000000000")
    healthy_list_shards = fake.list_shards
    never = asyncio.Event()

    async def unanswered_list_shards(**kwargs: Any) -> dict[str, Any]:
        await never.wait()
        raise AssertionError("unreachable")

    fake.list_shards = unanswered_list_shards  # type: ignore[method-assign]
    futures = [await producer.send(b"v", partition_key=f"k{i}") for i in range(40)]
    await asyncio.wait_for(producer.flush(), BOUND)
    errors = [f.exception() for f in futures]
    assert all(isinstance(e, DeliveryError) and e.retriable for e in errors)
    assert all(isinstance(e.__cause__, TransientServiceError) for e in errors if e is not None)
    assert producer.buffered == (0, 0)

    # The producer and its refreshes go on once ListShards answers again.
    fake.list_shards = healthy_list_shards  # type: ignore[method-assign]
    assert await asyncio.wait_for(producer.refresh_shard_map(), BOUND)
    acks = [await (await producer.send(b"w", partition_key=f"k{i}")) for i in range(5)]
    assert {ack.shard_id for ack in acks} <= {s.shard_id for s in producer.shard_map.open_shards}
    await asyncio.wait_for(producer.close(), BOUND)


async def test_requests_landing_on_new_shards_together_share_one_refresh_instead_of_one_each() -> None:
    fake = FakeKinesis(shards=1)
    # One aggregate per request: eight requests in flight, each landing on a child.
    producer = KinesisProducer(
        "s", client=fake, record_ttl=0.5, max_batch_entries=1, aggregate_max_bytes=2_000, **FAST
    )
    await producer.start()
    fake.split("shardId-000000000000")
    listings = 0
    never = asyncio.Event()

    async def unanswered_list_shards(**kwargs: Any) -> dict[str, Any]:
        nonlocal listings
        listings += 1
        await never.wait()
        raise AssertionError("unreachable")

    fake.list_shards = unanswered_list_shards  # type: ignore[method-assign]
    futures = [await producer.send(b"v" * 50, partition_key=f"k{i}") for i in range(400)]
    await asyncio.wait_for(producer.flush(), BOUND)
    assert len(fake.calls) == producer.config.max_in_flight
    # The first request's listing, then one shared by the seven that waited for it (one
    # each, in a row, held every place in flight for eight times record_ttl).
    assert listings == 2
    # Each record has its outcome: the expired ones never had a place in flight.
    assert all(isinstance(f.exception(), DeliveryError) for f in futures)
    await asyncio.wait_for(producer.close(), BOUND)
