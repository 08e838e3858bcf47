"""KafkaSource's fetches: what was fetched but not handed out yet is never skipped.

An in-memory stand-in for confluent_kafka.Consumer serves numbered fetches; every wait is
bounded (``asyncio.wait_for``).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from consumers._kafka_messages import KafkaRecords
from consumers.kafka import _EXTRA_CONSUMES, KafkaConsumerConfig, KafkaSource
from shardline.errors import AccessDeniedError
from shardline.kafka_config import KafkaClientConfig
from shardline.records import KafkaPosition
from tests.unit.consumers.kafka_lag_doubles import NothingFetchedYet

BOUND = 5.0
CLIENT = KafkaClientConfig(bootstrap_servers="127.0.0.1:9")


class FetchingConsumer(NothingFetchedYet):
    """Fetch ``n`` queues two messages of partition t/0 at offsets 2n and 2n+1.

    A call takes up to ``num_messages`` queued messages; with none queued it first fetches.
    Each of the first ``fetches`` fetches takes a permit from ``permits`` (waiting for one if
    none is left and the call may wait, returning nothing at once if it may not, as the real
    client does with a zero timeout); later fetches return nothing at once.  ``threads`` records
    the thread of each call.
    """

    def __init__(self, conf: dict[str, Any], fetches: int, permits: int) -> None:
        self.fetches = fetches
        self.served = 0
        self.permits = threading.Semaphore(permits)
        self.held = threading.Event()
        self.closed = threading.Event()
        self.timeouts: list[float] = []
        self.threads: list[int] = []
        self.queued: deque[Message] = deque()

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any) -> None:
        on_assign(self, [TopicPartition("t", 0)])

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        self.timeouts.append(timeout)
        self.threads.append(threading.get_ident())
        if not self.queued:
            if self.served >= self.fetches:
                return []
            if not self.permits.acquire(blocking=False):
                if timeout == 0:
                    return []
                self.held.set()
                if not self.permits.acquire(timeout=BOUND):
                    return []
            first = 2 * self.served
            self.served += 1
            self.queued.extend(
                Message(topic="t", partition=0, offset=offset, value=b"v", key=b"k")
                for offset in (first, first + 1)
            )
        return [self.queued.popleft() for _ in range(min(num_messages, len(self.queued)))]

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


async def test_a_local_backlog_is_taken_on_the_loop_thread_without_waiting() -> None:
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
    # Every fetch was served by a call that does not wait, made by the event loop's thread.
    assert consumer.timeouts[:20] == [0] * 20
    assert set(consumer.threads[:20]) == {threading.get_ident()}


async def test_one_hop_drains_a_backlog_that_arrives_while_the_consume_thread_waits() -> None:
    source, (consumer,) = _source(fetches=20, permits=0, batch=2)
    seen: list[int] = []
    async with source:

        async def read() -> None:
            async for batch in source.batches():
                assert len(batch.records) <= 2
                seen.extend(_offsets(batch.records))
                if len(seen) >= 40:
                    return

        reading = asyncio.create_task(read())
        # Nothing queued locally: the loop's non-waiting call came back empty and the consume
        # thread is now blocked in its waiting call.
        assert await asyncio.wait_for(asyncio.to_thread(consumer.held.wait, BOUND), BOUND)
        consumer.permits.release(20)
        await asyncio.wait_for(reading, BOUND)
    assert seen == list(range(40))
    # The waiting call (for one message) is followed, in the same hop, by one that takes what
    # is queued behind it (the two make one batch) and, while that comes back full, a bounded
    # number more, none of which waits; what is left is then taken on the loop thread.
    hop = 2 + _EXTRA_CONSUMES  # calls: the wait, what is queued behind it, then the bounded rest
    assert consumer.timeouts[: 1 + hop] == [0, 0.01] + [0] * (hop - 1)
    loop_thread = threading.get_ident()
    assert consumer.threads[0] == loop_thread
    assert loop_thread not in consumer.threads[1 : 1 + hop]
    assert set(consumer.threads[1 + hop : 20]) == {loop_thread}


class RevokingConsumer(FetchingConsumer):
    """Serves a revocation of t/0 from inside its second ``consume()`` call, as librdkafka
    serves rebalance callbacks from whichever thread calls ``consume()``; records each
    commit's thread and mode."""

    def __init__(self, conf: dict[str, Any], fetches: int, permits: int) -> None:
        super().__init__(conf, fetches, permits)
        self.on_revoke: Any = None
        self.commits: list[tuple[int, bool]] = []

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any) -> None:
        self.on_revoke = on_revoke
        super().subscribe(topics, on_assign, on_revoke)

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        if len(self.timeouts) == 1:
            self.on_revoke(self, [TopicPartition("t", 0)])
        return super().consume(num_messages, timeout)

    def commit(self, asynchronous: bool = True) -> None:
        self.commits.append((threading.get_ident(), asynchronous))


async def test_a_revocation_served_on_the_loop_thread_queues_its_commit_instead_of_waiting() -> None:
    built: list[RevokingConsumer] = []

    def factory(conf: dict[str, Any]) -> RevokingConsumer:
        built.append(RevokingConsumer(conf, fetches=2, permits=2))
        return built[-1]

    config = KafkaConsumerConfig(group_id="g", poll_timeout_s=0.01)
    source = KafkaSource(["t"], CLIENT, config, consumer_factory=factory)
    async with source:
        assert await asyncio.wait_for(_first_batch(source), BOUND) == [0, 1]
        assert await asyncio.wait_for(_first_batch(source), BOUND) == [2, 3]  # revoked inside
    (consumer,) = built
    loop_thread = threading.get_ident()
    # The revocation's commit (loop thread, queued), then close's (consume thread, awaited).
    assert consumer.commits[0] == (loop_thread, True)
    assert consumer.commits[-1][0] != loop_thread and consumer.commits[-1][1] is False


class RefusingConsumer(FetchingConsumer):
    """A consumer whose calls fail as librdkafka's do: with a raw ``KafkaException``."""

    def __init__(self, conf: dict[str, Any], *, fail_subscribe: bool) -> None:
        super().__init__(conf, fetches=0, permits=0)
        self.fail_subscribe = fail_subscribe

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any) -> None:
        if self.fail_subscribe:
            raise KafkaException(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED))
        super().subscribe(topics, on_assign, on_revoke)

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        raise KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))


@pytest.mark.parametrize("fail_subscribe", [False, True], ids=["consume", "subscribe"])
async def test_client_errors_cross_the_error_boundary(fail_subscribe: bool) -> None:
    # callers catch ShardlineError subclasses, never confluent-kafka's own exceptions
    config = KafkaConsumerConfig(group_id="g", poll_timeout_s=0.01)

    def factory(conf: dict[str, Any]) -> RefusingConsumer:
        return RefusingConsumer(conf, fail_subscribe=fail_subscribe)

    source = KafkaSource(["t"], CLIENT, config, consumer_factory=factory)
    async with source:
        with pytest.raises(AccessDeniedError) as caught:
            await asyncio.wait_for(_first_batch(source), BOUND)
    assert isinstance(caught.value.__cause__, KafkaException)


class ReassigningConsumer(FetchingConsumer):
    """Serves a revocation and a new assignment inside the hop's second call, the one that
    takes what is queued behind the first message."""

    def __init__(self, conf: dict[str, Any], fetches: int, permits: int) -> None:
        super().__init__(conf, fetches, permits)
        self.callbacks: tuple[Any, Any] | None = None
        self.sizes: list[int] = []

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any) -> None:
        self.callbacks = (on_assign, on_revoke)
        super().subscribe(topics, on_assign, on_revoke)

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        self.sizes.append(num_messages)
        if len(self.timeouts) == 2 and self.reassign:
            assert self.callbacks is not None
            on_assign, on_revoke = self.callbacks
            on_revoke(self, [TopicPartition("t", 0)])
            on_assign(self, [TopicPartition("t", 0)])
        return super().consume(num_messages, timeout)

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        pass


@pytest.mark.parametrize("reassign", [False, True], ids=["joined", "apart-across-a-rebalance"])
async def test_a_hop_waits_for_one_message_and_joins_what_is_queued_behind_it(reassign: bool) -> None:
    """The waiting call asks for one message (consume(count, timeout) would hold what arrives
    until count messages or the whole timeout); what is queued behind it joins its batch,
    unless a rebalance was served in between."""
    built: list[ReassigningConsumer] = []

    def factory(conf: dict[str, Any]) -> ReassigningConsumer:
        consumer = ReassigningConsumer(conf, fetches=1, permits=0)
        consumer.reassign = reassign  # type: ignore[attr-defined]
        built.append(consumer)
        return consumer

    config = KafkaConsumerConfig(group_id="g", poll_timeout_s=0.01, batch_max_messages=1000)
    source = KafkaSource(["t"], CLIENT, config, consumer_factory=factory)
    async with source:
        first = asyncio.create_task(_first_batch(source))
        (consumer,) = built
        assert await asyncio.wait_for(asyncio.to_thread(consumer.held.wait, BOUND), BOUND)
        consumer.permits.release()
        assert await asyncio.wait_for(first, BOUND) == ([0] if reassign else [0, 1])
        if reassign:
            assert await asyncio.wait_for(_first_batch(source), BOUND) == [1]
    assert consumer.sizes[:3] == [1000, 1, 999]  # the loop's take, the hop's wait, what is behind
    assert consumer.timeouts[:3] == [0, 0.01, 0]


class TwoPartitionConsumer(FetchingConsumer):
    """Each fetch holds messages of two partitions (t/0 and t/1), as one broker response can."""

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        messages = super().consume(num_messages, timeout)
        return [
            Message(topic="t", partition=n % 2, offset=m.offset(), value=b"v", key=b"k")
            for n, m in enumerate(messages)
        ]


async def test_leaving_after_one_partitions_batch_keeps_the_other_partitions_batch() -> None:
    """A fetch spanning partitions makes one batch per partition; a caller that leaves the
    iteration after the first gets the rest when it comes back (librdkafka's position already
    moved past them: dropped, they would be skipped until a restart)."""
    built: list[TwoPartitionConsumer] = []

    def factory(conf: dict[str, Any]) -> TwoPartitionConsumer:
        built.append(TwoPartitionConsumer(conf, fetches=2, permits=2))
        return built[-1]

    config = KafkaConsumerConfig(group_id="g", poll_timeout_s=0.01, batch_max_messages=1000)
    source = KafkaSource(["t"], CLIENT, config, consumer_factory=factory)
    seen: list[tuple[str, list[int]]] = []

    async def one() -> None:
        async for batch in source.batches():
            seen.append((batch.partition, _offsets(batch.records)))
            return

    async with source:
        for _ in range(4):
            await asyncio.wait_for(one(), BOUND)
    assert seen == [("t/0", [0]), ("t/1", [1]), ("t/0", [2]), ("t/1", [3])]
