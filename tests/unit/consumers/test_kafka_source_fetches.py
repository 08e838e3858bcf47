"""KafkaSource's fetches: what was fetched but not handed out yet is never skipped.

An in-memory stand-in for confluent_kafka.Consumer serves numbered fetches; every wait is
bounded (``asyncio.wait_for``).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import Message, TopicPartition

from consumers._kafka_messages import KafkaRecords
from consumers.kafka import _EXTRA_CONSUMES, KafkaConsumerConfig, KafkaSource
from shardline.kafka_config import KafkaClientConfig
from shardline.records import KafkaPosition

BOUND = 5.0
CLIENT = KafkaClientConfig(bootstrap_servers="127.0.0.1:9")


class FetchingConsumer:
    """Fetch ``n`` returns two messages of partition t/0 at offsets 2n and 2n+1.

    Each of the first ``fetches`` fetches takes a permit from ``permits`` (waiting for one if
    none is left); later fetches return nothing at once.
    """

    def __init__(self, conf: dict[str, Any], fetches: int, permits: int) -> None:
        self.fetches = fetches
        self.served = 0
        self.permits = threading.Semaphore(permits)
        self.held = threading.Event()
        self.closed = threading.Event()
        self.timeouts: list[float] = []

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any) -> None:
        on_assign(self, [TopicPartition("t", 0)])

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        self.timeouts.append(timeout)
        if self.served >= self.fetches:
            return []
        if not self.permits.acquire(blocking=False):
            self.held.set()
            if not self.permits.acquire(timeout=BOUND):
                return []
        first = 2 * self.served
        self.served += 1
        return [
            Message(topic="t", partition=0, offset=offset, value=b"v", key=b"k")
            for offset in (first, first + 1)
        ]

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        pass

    def commit(self, asynchronous: bool = True) -> None:
        pass

    def close(self) -> None:
        self.closed.set()


def _source(fetches: int, permits: int, batch: int = 1000) -> tuple[KafkaSource, list[FetchingConsumer]]:
    built: list[FetchingConsumer] = []

    def factory(conf: dict[str, Any]) -> FetchingConsumer:
        built.append(FetchingConsumer(conf, fetches, permits))
        return built[-1]

    config = KafkaConsumerConfig(group_id="g", poll_timeout_s=0.01, batch_max_messages=batch)
    return KafkaSource(["t"], CLIENT, config, consumer_factory=factory), built


def _offsets(records: Any) -> list[int]:
    positions = [record.position for record in records]
    assert all(isinstance(position, KafkaPosition) for position in positions)
    return [position.offset for position in positions]


async def _first_batch(source: KafkaSource) -> list[int]:
    async for batch in source.batches():
        assert isinstance(batch.records, KafkaRecords)
        return _offsets(batch.records)
    raise AssertionError("no batch")


async def test_leaving_the_iteration_and_coming_back_skips_nothing() -> None:
    source, (consumer,) = _source(fetches=3, permits=3)
    async with source:
        assert await asyncio.wait_for(_first_batch(source), BOUND) == [0, 1]
        assert await asyncio.wait_for(_first_batch(source), BOUND) == [2, 3]
        assert await asyncio.wait_for(_first_batch(source), BOUND) == [4, 5]
    assert consumer.closed.is_set()


async def test_a_caller_cancelled_while_waiting_loses_no_fetch() -> None:
    source, (consumer,) = _source(fetches=2, permits=1)
    async with source:
        assert await asyncio.wait_for(_first_batch(source), BOUND) == [0, 1]
        waiting = asyncio.create_task(_first_batch(source))
        assert await asyncio.wait_for(asyncio.to_thread(consumer.held.wait, BOUND), BOUND)
        waiting.cancel()  # while its fetch is still on the consume thread
        done, _ = await asyncio.wait({waiting}, timeout=BOUND)
        assert done and waiting.cancelled()
        consumer.permits.release()
        assert await asyncio.wait_for(_first_batch(source), BOUND) == [2, 3]


async def test_one_hop_drains_a_local_backlog_in_batches_of_the_configured_size() -> None:
    source, (consumer,) = _source(fetches=20, permits=20, batch=2)
    seen: list[int] = []
    async with source:

        async def read() -> None:
            async for batch in source.batches():
                assert len(batch.records) <= 2  # each consume() call's messages stay one batch
                seen.extend(_offsets(batch.records))
                if len(seen) >= 40:
                    return

        await asyncio.wait_for(read(), BOUND)
    assert seen == list(range(40))
    # A full call is followed, in the same hop, by calls that do not wait (a bounded number).
    hop = 1 + _EXTRA_CONSUMES
    assert consumer.timeouts[:hop] == [0.01] + [0] * _EXTRA_CONSUMES
    assert consumer.timeouts[hop] == 0.01
