"""A Kafka partition assigned back to the same member is a new hold of it for the pipeline.

librdkafka forgets a partition's stored offset when the partition leaves the assignment, and
reads it again from the group's last commit when it comes back.  What the pipeline knew of
the partition before (the positions it checkpointed, the tickets still in flight) belongs to
the earlier assignment; each batch therefore says under which assignment it was read
(:attr:`SourceBatch.hold`).  The stand-in for confluent_kafka.Consumer behaves as librdkafka
does where it matters: rebalance callbacks run inside ``consume()``, a stored offset is
reset when its partition is revoked, and only stored offsets are committed.  Every wait is
bounded.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from consumers.kafka import KafkaConsumerConfig, KafkaSource
from consumers.pipeline import Pipeline, PipelineConfig
from consumers.sinks.memory import MemorySink
from shardline import metrics_events as events
from shardline.kafka_config import KafkaClientConfig
from tests.unit.consumers.kafka_lag_doubles import NothingFetchedYet

BOUND = 5.0
CLIENT = KafkaClientConfig(bootstrap_servers="127.0.0.1:9")
PARTITION = TopicPartition("t", 0)


def _messages(count: int) -> list[Message]:
    return [Message(topic="t", partition=0, offset=offset, value=b"v", key=b"k") for offset in range(count)]


class DroppedAndRejoined(NothingFetchedYet):
    """Assigns t/0 and hands out offsets 0..2.  Once an offset is stored, the member turns out
    to have been dropped from the group (max.poll.interval.ms passed while the sink was slow):
    the next waiting ``consume()`` serves the revocation of the lost partition (its commit
    fails, its stored offset is forgotten), then the assignment of the rejoined member, and
    hands out 0..2 again (nothing was ever committed).  ``committed`` holds what each commit
    carried."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.on_assign: Any = None
        self.on_revoke: Any = None
        self.stored: int | None = None
        self.first_store = threading.Event()
        self.rounds = 0
        self.lost = False
        self.committed: list[int] = []

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any) -> None:
        self.on_assign, self.on_revoke = on_assign, on_revoke

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        if self.rounds == 0:
            self.rounds = 1
            self.on_assign(self, [PARTITION])
            return _messages(3)
        if self.rounds == 1 and timeout > 0 and self.first_store.wait(BOUND):
            self.rounds = 2
            self.lost = True
            self.on_revoke(self, [PARTITION])
            self.stored, self.lost = None, False  # librdkafka resets a removed partition's store
            self.on_assign(self, [PARTITION])
            return _messages(3)
        time.sleep(min(timeout, 0.005))
        return []

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        self.stored = offsets[0].offset
        self.first_store.set()

    def commit(self, asynchronous: bool = True) -> None:
        if self.lost:
            raise KafkaException(KafkaError(KafkaError._ASSIGNMENT_LOST))
        if self.stored is None:
            raise KafkaException(KafkaError(KafkaError._NO_OFFSET))
        self.committed.append(self.stored)

    def close(self) -> None:
        pass


class RecordsIn:
    """Sets ``reached`` once the pipeline has read ``count`` records."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.read = 0
        self.reached = asyncio.Event()

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        if name == events.RECORDS_IN:
            self.read += int(value)
            if self.read >= self.count:
                self.reached.set()


async def test_a_partition_assigned_back_is_checkpointed_again_up_to_the_same_offset() -> None:
    # the offset stored after the member was dropped (librdkafka still counted the partition
    # assigned) was remembered as checkpointed; read again up to the same offset after the
    # rejoin, it was never stored again, and nothing was ever committed for the partition
    built: list[DroppedAndRejoined] = []

    def factory(conf: dict[str, Any]) -> DroppedAndRejoined:
        built.append(DroppedAndRejoined(conf))
        return built[-1]

    source = KafkaSource(
        ["t"], CLIENT, KafkaConsumerConfig(group_id="g", poll_timeout_s=0.01), consumer_factory=factory
    )
    read = RecordsIn(6)
    pipeline = Pipeline(source, MemorySink(), config=PipelineConfig(checkpoint_interval=0.01), observer=read)
    run = asyncio.create_task(pipeline.run())
    try:
        await asyncio.wait_for(read.reached.wait(), BOUND)  # both assignments' records read
        await asyncio.wait_for(pipeline.close(), BOUND)
    finally:
        stats = await asyncio.wait_for(run, BOUND)
    (consumer,) = built
    assert stats.records_in == 6
    assert consumer.committed[-1:] == [3]  # the close's commit carries the rejoined store


async def test_each_assignment_of_a_partition_is_a_hold_of_its_own() -> None:
    built: list[DroppedAndRejoined] = []

    def factory(conf: dict[str, Any]) -> DroppedAndRejoined:
        built.append(DroppedAndRejoined(conf))
        return built[-1]

    source = KafkaSource(
        ["t"], CLIENT, KafkaConsumerConfig(group_id="g", poll_timeout_s=0.01), consumer_factory=factory
    )
    batches = aiter(source.batches())
    first = await asyncio.wait_for(anext(batches), BOUND)
    assert await source.checkpoint(first.partition, first.records[-1].position)
    second = await asyncio.wait_for(anext(batches), BOUND)
    assert [r.position.offset for r in second.records] == [0, 1, 2]  # type: ignore[attr-defined]
    assert second.hold > first.hold
    await asyncio.wait_for(source.close(timeout=1), BOUND)


class _Offsets(NothingFetchedYet):
    """Enough of confluent_kafka.Consumer for offset stores and rebalances driven by the test."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.stored: list[int] = []
        self.on_assign: Any = None
        self.on_revoke: Any = None
        self.served = False

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any) -> None:
        self.on_assign, self.on_revoke = on_assign, on_revoke

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        if not self.served:
            self.served = True
            self.on_assign(self, [PARTITION])
            return _messages(3)
        time.sleep(min(timeout, 0.005))
        return []

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        self.stored.append(offsets[0].offset)

    def commit(self, asynchronous: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


async def test_a_position_of_an_earlier_assignment_is_not_stored_in_the_next_one() -> None:
    # revoked and assigned back before the pipeline saw a batch of the new assignment: its
    # position of the old one was stored in the new one, where another member may have
    # committed past it meanwhile (the group's commit moved back: records read again)
    built: list[_Offsets] = []

    def factory(conf: dict[str, Any]) -> _Offsets:
        built.append(_Offsets(conf))
        return built[-1]

    source = KafkaSource(
        ["t"], CLIENT, KafkaConsumerConfig(group_id="g", poll_timeout_s=0.01), consumer_factory=factory
    )
    batches = aiter(source.batches())
    batch = await asyncio.wait_for(anext(batches), BOUND)
    (consumer,) = built
    assert await source.checkpoint(batch.partition, batch.records[0].position)
    consumer.on_revoke(consumer, [PARTITION])
    consumer.on_assign(consumer, [PARTITION])
    assert not await source.checkpoint(batch.partition, batch.records[-1].position)
    assert consumer.stored == [1]
    await asyncio.wait_for(source.close(timeout=1), BOUND)
