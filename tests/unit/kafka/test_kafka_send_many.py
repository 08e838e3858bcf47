"""KafkaProducer.send_many against an in-memory confluent-kafka double, and its batch bookkeeping."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError

from producers import keys
from producers._kafka_batch import DeliveryBatch, KafkaBatchAcks
from producers.kafka import KafkaProducer, KafkaProducerConfig
from shardline.errors import (
    DeliveryError,
    InvalidDataError,
    InvalidPartitionKeyError,
    MessageTooLargeError,
    ShardlineError,
    ValidationError,
)
from shardline.gcpause import forget_frozen_heap
from shardline.kafka_config import EVENT_ID_HEADER
from shardline.records import KafkaAck, Record
from tests.unit.kafka.fake_kafka_producer import FakeMessage, FakeProducer, QueueFullSignal

TOPIC = "telemetry"


def make(fake: FakeProducer, **options: Any) -> KafkaProducer:
    config = options.pop("config", KafkaProducerConfig(poll_timeout_s=0.05))
    return KafkaProducer(TOPIC, producer=fake, config=config, **options)


def offsets_by_value(produced: list[FakeMessage]) -> dict[bytes, tuple[int, int]]:
    return {m.value_bytes: (m.partition_id, m.offset_value) for m in produced}


async def test_one_future_resolves_to_acks_in_input_order_whatever_the_delivery_order() -> None:
    fake = FakeProducer(partitions=4)
    values = [b"v%d" % i for i in range(200)]
    async with make(fake) as producer:
        future = await producer.send_many(values, [b"key-%d" % (i % 13) for i in range(200)])
        for partition in (3, 1, 0, 2):  # one partition after another, not in send order
            fake.acknowledge(partition=partition)
        acks = await future

    assert isinstance(acks, KafkaBatchAcks)
    assert acks.ok and len(acks) == 200
    truth = offsets_by_value(fake.produced)
    assert [(ack.partition, ack.offset) for ack in acks] == [truth[v] for v in values]
    assert acks[0] == KafkaAck(TOPIC, *truth[b"v0"])
    assert acks[-1] == acks[199]
    assert acks[10:12] == [acks[10], acks[11]]
    expected_ends: dict[int, int] = {}
    for partition, offset in truth.values():
        expected_ends[partition] = max(expected_ends.get(partition, 0), offset + 1)
    assert acks.end_offsets() == expected_ends


async def test_keys_come_from_records_the_strategy_or_the_keys_argument() -> None:
    fake = FakeProducer()
    producer = make(fake, serializer=lambda v: json.dumps(v).encode(), key_strategy=keys.field("device"))
    record = Record(b"raw", partition_key="from-record", event_id="evt-1", headers={"h": b"v"})
    async with producer:
        values = [{"device": "d-1"}, record, {"device": "d-2"}]
        future = await producer.send_many(values, [None, None, "given"])
        fake.acknowledge()
        acks = await future
    assert acks.ok
    assert [m.key_value for m in fake.produced] == ["d-1", "from-record", "given"]
    assert json.loads(fake.produced[0].value_bytes) == {"device": "d-1"}
    assert dict(fake.produced[1].kwargs["headers"]) == {"h": b"v", EVENT_ID_HEADER: b"evt-1"}


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ("text", InvalidDataError),
        (None, InvalidDataError),
        (b"x" * 1_000_001, MessageTooLargeError),
    ],
)
async def test_one_bad_message_rejects_the_whole_batch_before_anything_is_queued(
    bad: Any, error: type[Exception]
) -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        with pytest.raises(error, match="message 2 of the batch"):
            await producer.send_many([b"a", b"b", bad, b"d"], ["k"] * 4)
        assert producer.in_flight == 0
    assert fake.produced == []


async def test_bad_keys_are_rejected_before_anything_is_queued() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        with pytest.raises(InvalidPartitionKeyError, match="message 1 of the batch"):
            await producer.send_many([b"a", b"b"], ["k", 7])  # type: ignore[list-item]
        with pytest.raises(ValidationError, match="2 values but 1 keys"):
            await producer.send_many([b"a", b"b"], ["k"])
        with pytest.raises(MessageTooLargeError):
            await producer.send_many([b"x" * 999_990], ["k" * 20])
    assert fake.produced == []


async def test_empty_batch_resolves_at_once() -> None:
    async with make(FakeProducer()) as producer:
        acks = await (await producer.send_many([]))
    assert len(acks) == 0 and acks.ok and list(acks) == []


async def test_failed_messages_are_reported_in_failed_and_raise_when_read() -> None:
    fake = FakeProducer()
    signal = QueueFullSignal()
    async with make(fake, observer=signal) as producer:
        future = await producer.send_many([b"a", b"b", b"c"], ["k"] * 3)
        fake.acknowledge(1)
        fake.fail(KafkaError._MSG_TIMED_OUT)
        acks = await future
    assert not acks.ok
    assert sorted(acks.failed) == [1, 2]
    assert isinstance(acks.failed[1], DeliveryError) and acks.failed[1].retriable
    assert acks[0].offset == 0
    with pytest.raises(DeliveryError):
        _ = acks[2]
    assert ("records_failed", 2) in signal.events
    assert ("records_delivered", 1) in signal.events


async def test_full_queue_is_back_pressure_and_later_sends_queue_behind_the_batch() -> None:
    fake = FakeProducer(capacity=3)
    signal = QueueFullSignal()
    async with make(fake, observer=signal) as producer:
        batch = asyncio.create_task(producer.send_many([b"0", b"1", b"2", b"3", b"4"], ["k"] * 5))
        await signal.full.wait()
        assert not batch.done()
        later = asyncio.create_task(producer.send(b"5", "k"))
        assert [m.value_bytes for m in fake.produced] == [b"0", b"1", b"2"]
        fake.acknowledge()  # room again: the batch continues first, then the single send
        batch_future = await batch
        single_future = await later
        fake.acknowledge()
        acks = await batch_future
        single = await single_future
    assert [m.value_bytes for m in fake.produced] == [b"0", b"1", b"2", b"3", b"4", b"5"]
    assert [ack.offset for ack in acks] == [0, 1, 2, 3, 4]
    assert single.offset == 5


async def test_the_callers_lists_changed_while_the_batch_waits_do_not_change_what_is_sent() -> None:
    """send_many reads the caller's own lists (no copy per call); before it waits for room it
    holds copies of them, so what the caller does with its lists meanwhile sends nothing else."""
    fake = FakeProducer(capacity=2)
    signal = QueueFullSignal()
    values = [b"0", b"1", b"2", b"3"]
    keys_given: list[str | bytes | None] = ["a", "b", "c", "d"]

    producer = make(fake, observer=signal)
    await producer.start()
    batch = asyncio.create_task(producer.send_many(values, keys_given))
    await signal.full.wait()
    values[2:] = [b"changed", b"changed"]
    keys_given[2:] = ["x", "x"]
    values.clear()
    fake.acknowledge()
    batch_future = await asyncio.wait_for(batch, 10)
    fake.acknowledge()
    acks = await asyncio.wait_for(batch_future, 10)  # a batch cut short would never complete
    await producer.close()
    assert [(m.value_bytes, m.key_value) for m in fake.produced] == [
        (b"0", "a"),
        (b"1", "b"),
        (b"2", "c"),
        (b"3", "d"),
    ]
    assert acks.ok and len(acks) == 4


async def test_flush_waits_for_batches_reported_from_the_poll_thread() -> None:
    fake = FakeProducer()
    async with make(fake) as producer:
        future = await producer.send_many([b"%d" % i for i in range(50)], ["k"] * 50)
        flushing = asyncio.create_task(producer.flush())
        assert producer.in_flight == 50
        fake.acknowledge(20)
        fake.fail(KafkaError._MSG_TIMED_OUT)
        await flushing
        assert future.done()
        assert producer.in_flight == 0
    acks = future.result()
    assert len(acks.failed) == 30
    assert "shardline-kafka-delivery" in fake.poll_threads


async def test_fatal_error_while_waiting_fails_the_messages_not_yet_queued() -> None:
    fake = FakeProducer(capacity=2)
    signal = QueueFullSignal()
    async with make(fake, observer=signal) as producer:
        batch = asyncio.create_task(producer.send_many([b"0", b"1", b"2", b"3"], ["k"] * 4))
        await signal.full.wait()
        fake.fail(KafkaError._FATAL, fatal=True)
        acks = await (await batch)
    assert len(fake.produced) == 2
    assert sorted(acks.failed) == [0, 1, 2, 3]
    assert all(isinstance(error, ShardlineError) for error in acks.failed.values())
    assert acks.failed[2] is acks.failed[3]


async def test_cancelled_batch_reports_what_was_queued_and_queues_nothing_more() -> None:
    fake = FakeProducer(capacity=2)
    signal = QueueFullSignal()
    async with make(fake, observer=signal) as producer:
        batch = asyncio.create_task(producer.send_many([b"0", b"1", b"2"], ["k"] * 3))
        await signal.full.wait()
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
        fake.acknowledge()
        await producer.flush()
        assert producer.in_flight == 0
    assert [m.value_bytes for m in fake.produced] == [b"0", b"1"]


def new_batch(
    loop: asyncio.AbstractEventLoop, size: int
) -> tuple[DeliveryBatch, list[DeliveryBatch], list[DeliveryBatch]]:
    completed: list[DeliveryBatch] = []
    handed: list[DeliveryBatch] = []
    batch = DeliveryBatch(loop.create_future(), size, on_complete=completed.append, hand_over=handed.append)
    return batch, completed, handed


def test_batch_counts_reports_from_both_threads_and_completes_once() -> None:
    loop = asyncio.new_event_loop()
    try:
        batch, completed, handed = new_batch(loop, 400)
        callbacks = [batch.callback(index) for index in range(400)]
        message = FakeMessage(TOPIC, b"", None, partition_id=1, offset_value=7)

        def other_thread() -> None:
            for index in range(0, 400, 2):
                callbacks[index](None, message)

        worker = threading.Thread(target=other_thread)
        worker.start()
        for index in range(1, 400, 2):
            callbacks[index](None, message)
        worker.join()
        assert batch.reported == 400
        assert not completed and not handed  # not complete before every message was queued
        batch.finish_queueing()
        batch.finish_queueing()
        assert completed == [batch] and not handed
        assert {(ack.partition, ack.offset) for ack in batch.acks(TOPIC, {})} == {(1, 7)}
    finally:
        loop.close()


def test_last_report_on_the_delivery_thread_hands_the_batch_to_the_loop() -> None:
    loop = asyncio.new_event_loop()
    try:
        batch, completed, handed = new_batch(loop, 2)
        first, second = (batch.callback(index) for index in range(2))
        batch.finish_queueing()
        first(None, FakeMessage(TOPIC, b"", None, partition_id=0, offset_value=0))
        worker = threading.Thread(target=second, args=(KafkaError(KafkaError._MSG_TIMED_OUT), None))
        worker.start()
        worker.join()
        assert handed == [batch] and not completed
        assert [index for index, _ in batch.errors] == [1]
    finally:
        loop.close()


@pytest.mark.parametrize("early_reports", [0, 2, 3])
def test_a_batch_with_unqueued_messages_completes_on_its_last_queued_report(early_reports: int) -> None:
    """Messages 3 and 4 never queued: the batch completes once 0-2 reported, whichever comes last."""
    loop = asyncio.new_event_loop()
    try:
        batch, completed, handed = new_batch(loop, 5)
        message = FakeMessage(TOPIC, b"", None, partition_id=0, offset_value=1)
        for index in range(early_reports):
            batch.callback(index)(None, message)
        assert batch.reported == early_reports and not completed
        batch.not_queued(3, DeliveryError("not queued"))
        batch.finish_queueing()
        assert batch.reported == early_reports
        assert completed == ([batch] if early_reports == 3 else [])
        for index in range(early_reports, 3):
            assert not batch.complete
            batch.callback(index)(None, message)
        assert completed == [batch] and not handed
        assert batch.complete and batch.reported == batch.expected == 3
        assert [index for index, _ in batch.errors] == [3, 4]
    finally:
        loop.close()


def test_a_reset_batch_reuses_its_callables_and_keeps_earlier_acks_intact() -> None:
    loop = asyncio.new_event_loop()
    try:
        batch, completed, _ = new_batch(loop, 3)
        callables = list(batch.callbacks)
        for index in range(3):
            batch.callback(index)(
                None, FakeMessage(TOPIC, b"", None, partition_id=index, offset_value=10 + index)
            )
        batch.finish_queueing()
        first_acks = batch.acks(TOPIC, {})
        batch.reset(loop.create_future(), 2)
        assert batch.callbacks == callables and batch.capacity == 3  # reused, not grown
        assert batch.reported == 0 and not batch.complete and not batch.errors
        batch.callback(0)(None, FakeMessage(TOPIC, b"", None, partition_id=5, offset_value=99))
        batch.callback(1)(KafkaError(KafkaError._MSG_TIMED_OUT), None)
        batch.finish_queueing()
        assert completed == [batch, batch]
        assert [(ack.partition, ack.offset) for ack in first_acks] == [(0, 10), (1, 11), (2, 12)]
        assert len(batch.acks(TOPIC, {})) == 2 and [index for index, _ in batch.errors] == [1]
        batch.reset(loop.create_future(), 5)
        assert batch.capacity == 5 and len(batch.partitions) == len(batch.offsets) == 5
    finally:
        loop.close()


async def test_records_with_headers_wait_for_room_like_plain_values() -> None:
    fake = FakeProducer(capacity=2)
    signal = QueueFullSignal()
    records = [Record(b"%d" % i, partition_key="k", event_id=f"e-{i}") for i in range(4)]
    async with make(fake, observer=signal) as producer:
        batch = asyncio.create_task(producer.send_many(records))
        await signal.full.wait()
        fake.acknowledge()
        future = await batch
        fake.acknowledge()
        acks = await future
    assert [ack.offset for ack in acks] == [0, 1, 2, 3]
    assert [dict(m.kwargs["headers"])[EVENT_ID_HEADER] for m in fake.produced] == [
        b"e-0",
        b"e-1",
        b"e-2",
        b"e-3",
    ]


async def test_close_with_timeout_purges_a_batch_and_reports_every_message() -> None:
    fake = FakeProducer()
    producer = make(fake)
    future = await producer.send_many([b"a", b"b", b"c"], ["k"] * 3)
    await producer.close(timeout=0.01)
    assert fake.purged
    acks = future.result()
    assert sorted(acks.failed) == [0, 1, 2]
    assert all(isinstance(error, DeliveryError) for error in acks.failed.values())


@pytest.mark.usefixtures("collector_enabled")
def test_a_batchs_report_callables_go_straight_to_the_oldest_generation() -> None:
    """They live as long as the batch: no young collection walks them on the way there, and
    their number does not trigger a full collection."""
    forget_frozen_heap()  # the fixture unfroze the heap; the promotion must see that
    loop = asyncio.new_event_loop()
    try:
        batch, _, _ = new_batch(loop, 5_000)
        oldest = {id(candidate) for candidate in gc.get_objects(2)}
        assert all(id(callback) in oldest for callback in batch.callbacks)
        grown = len(batch.callbacks)
        batch.reset(loop.create_future(), 8_000)  # growing promotes the new ones too
        oldest = {id(candidate) for candidate in gc.get_objects(2)}
        assert all(id(callback) in oldest for callback in batch.callbacks[grown:])
    finally:
        loop.close()
