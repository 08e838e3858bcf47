"""Kafka producer and consumer over the wire against the local Tansu broker."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest

from consumers.kafka import (
    KafkaConsumerConfig,
    KafkaReplaySource,
    KafkaSource,
    OffsetRange,
    consumer_lag,
    end_offsets_from_acks,
)
from consumers.progress import ConsumeProgress
from consumers.source import SourceBatch
from producers.kafka import KafkaProducer, KafkaProducerConfig
from shardline.errors import DeliveryError
from shardline.eventid import EventIdKey
from shardline.kafka_config import KafkaClientConfig
from shardline.metrics_events import KAFKA_LAG_MESSAGES, KAFKA_PARTITIONS_ASSIGNED, KAFKA_PARTITIONS_REVOKED
from shardline.records import ConsumedRecord, KafkaAck, KafkaPosition, Record
from tests.integration.kafka_handover import Checkpointed, Delivered, Event, Revoked, judge_handovers
from tests.kafka_topics import new_topic

pytestmark = pytest.mark.integration

SESSION_MS = 6000


def group_config(group: str) -> KafkaConsumerConfig:
    return KafkaConsumerConfig(
        group_id=group, session_timeout_ms=SESSION_MS, commit_interval_ms=200, poll_timeout_s=0.2
    )


async def produce(bootstrap: str, topic: str, count: int, keys: int, start: int = 0) -> list[KafkaAck]:
    async with KafkaProducer(topic, KafkaClientConfig(bootstrap)) as producer:
        futures = [
            await producer.send(f"{i}".encode(), f"key-{i % keys}") for i in range(start, start + count)
        ]
        return list(await asyncio.gather(*futures))


async def consume_until(
    source: KafkaSource, seen: list[tuple[str, int]], stop_at: int, *, checkpoint: bool = True
) -> None:
    """Read, checkpoint each batch as acknowledged, stop once ``stop_at`` values were seen."""
    batches: AsyncIterator[SourceBatch] = source.batches()
    async for batch in batches:
        for record in batch.records:
            seen.append((record.partition_key, int(record.data)))
        if checkpoint and batch.records:
            await source.checkpoint(batch.partition, batch.records[-1].position)
        if len(seen) >= stop_at:
            break


async def test_round_trip_of_keyed_messages_keeps_per_key_order(kafka_bootstrap: str) -> None:
    count, keys = 100_000, 1_000
    topic = new_topic(kafka_bootstrap, 8)
    acks = await produce(kafka_bootstrap, topic, count, keys)
    assert len(acks) == count
    partition_of_key: dict[str, set[int]] = defaultdict(set)

    seen: list[tuple[str, int]] = []
    async with KafkaSource(
        [topic], KafkaClientConfig(kafka_bootstrap), group_config(f"g-{uuid.uuid4()}")
    ) as source:
        batches = source.batches()
        async for batch in batches:
            for record in batch.records:
                assert isinstance(record.position, KafkaPosition)
                partition_of_key[record.partition_key].add(record.position.partition_id)
                seen.append((record.partition_key, int(record.data)))
            if len(seen) >= count:
                break

    assert sorted(value for _, value in seen) == list(range(count))
    per_key: dict[str, list[int]] = defaultdict(list)
    for key, value in seen:
        per_key[key].append(value)
    assert all(values == sorted(values) for values in per_key.values())
    assert all(len(partitions) == 1 for partitions in partition_of_key.values())


async def test_restart_resumes_from_the_committed_offset(kafka_bootstrap: str) -> None:
    topic = new_topic(kafka_bootstrap, 2)
    await produce(kafka_bootstrap, topic, 2_000, 20)
    group = f"g-{uuid.uuid4()}"
    client = KafkaClientConfig(kafka_bootstrap)

    first: list[tuple[str, int]] = []
    async with KafkaSource([topic], client, group_config(group)) as source:
        await consume_until(source, first, 700)
    # close() committed exactly what was checkpointed; a new member continues from there.
    await produce(kafka_bootstrap, topic, 1_000, 20, start=2_000)
    second: list[tuple[str, int]] = []
    async with KafkaSource([topic], client, group_config(group)) as source:
        await consume_until(source, second, 3_000 - len(first))

    values = [v for _, v in first] + [v for _, v in second]
    assert sorted(values) == list(range(3_000))  # nothing lost, nothing read twice


async def test_unacknowledged_records_are_redelivered_after_restart(kafka_bootstrap: str) -> None:
    topic = new_topic(kafka_bootstrap, 1)
    await produce(kafka_bootstrap, topic, 100, 1)
    group = f"g-{uuid.uuid4()}"
    client = KafkaClientConfig(kafka_bootstrap)
    async with KafkaSource([topic], client, group_config(group)) as source:
        batches = source.batches()
        async for batch in batches:
            records = list(batch.records)
            # acknowledge only up to offset 39
            acked = next(r for r in records if r.position.offset == 39)  # type: ignore[union-attr]
            await source.checkpoint(batch.partition, acked.position)
            break
    again: list[tuple[str, int]] = []
    async with KafkaSource([topic], client, group_config(group)) as source:
        await consume_until(source, again, 60)
    assert [v for _, v in again] == list(range(40, 100))


async def test_two_members_rebalance_and_lose_nothing(kafka_bootstrap: str) -> None:
    """RELIABILITY row 14: a second member joins while records flow; the first commits on revoke.

    Records are produced until the second member has partitions, then a last wave, so both
    members read and the first is busy when it is revoked.  Offsets are committed only on
    revoke and on close (the periodic commit is a minute away), so a new owner that starts at
    the revoked member's last checkpoint shows the commit on revoke at work.  Judged by
    :func:`tests.integration.kafka_handover.judge_handovers`: per-key order within each
    member's output and across each hand-over, duplicates only from what was in flight at a
    revoke; and nothing acknowledged is lost.
    """
    keys = 50
    topic = new_topic(kafka_bootstrap, 4)
    acks = await produce(kafka_bootstrap, topic, 1_000, keys)
    group = f"g-{uuid.uuid4()}"
    client = KafkaClientConfig(kafka_bootstrap)
    config = dataclasses.replace(group_config(group), commit_interval_ms=60_000)
    events: list[Event] = []
    progress = asyncio.Condition()
    second_assigned = threading.Event()

    class Rebalances:
        def __init__(self, member: str) -> None:
            self.member = member

        def on_event(self, name: str, value: float = 1.0, **dimensions: str) -> None:
            if name == KAFKA_PARTITIONS_REVOKED:
                events.append(Revoked(self.member))  # list.append: safe from the consume thread
            if name == KAFKA_PARTITIONS_ASSIGNED and self.member == "second" and value > 0:
                second_assigned.set()

    def distinct() -> int:
        return len({(e.partition, e.offset) for e in events if isinstance(e, Delivered)})

    async def run(name: str, member: KafkaSource) -> None:
        async for batch in member.batches():
            for record in batch.records:
                position = record.position
                assert isinstance(position, KafkaPosition)
                value = int(record.data)
                events.append(
                    Delivered(name, position.partition_id, position.offset, record.partition_key, value)
                )
            last = batch.records[-1].position
            assert isinstance(last, KafkaPosition)
            stored = await member.checkpoint(batch.partition, last)
            events.append(Checkpointed(name, last.partition_id, last.offset, stored))
            async with progress:
                progress.notify_all()

    async def send_wave(producer: KafkaProducer, count: int) -> None:
        start = len(acks)
        values = range(start, start + count)
        futures = [await producer.send(f"{i}".encode(), f"key-{i % keys}") for i in values]
        acks.extend(await asyncio.gather(*futures))

    async def produce_until_second_is_assigned() -> None:
        async with KafkaProducer(topic, client) as producer:
            while not second_assigned.is_set():
                await send_wave(producer, 20)
                await asyncio.sleep(0.05)  # pacing: a trickle while the group rebalances
            await send_wave(producer, 1_000)

    first = KafkaSource([topic], client, config, observer=Rebalances("first"))
    task = asyncio.create_task(run("first", first))
    async with asyncio.timeout(60), progress:
        await progress.wait_for(lambda: distinct() >= 200)  # the first member is reading
    second = KafkaSource([topic], client, config, observer=Rebalances("second"))
    second_task = asyncio.create_task(run("second", second))
    async with asyncio.timeout(60):
        await produce_until_second_is_assigned()
    total = len(acks)
    async with asyncio.timeout(120), progress:
        await progress.wait_for(lambda: distinct() >= total)
    await first.stop()
    await second.stop()
    await asyncio.gather(task, second_task)
    await first.close()
    await second.close()

    log: dict[int, list[int]] = defaultdict(list)
    for value, ack in sorted(enumerate(acks), key=lambda pair: (pair[1].partition, pair[1].offset)):
        assert ack.offset == len(log[ack.partition])  # each partition's log is dense from 0
        log[ack.partition].append(value)
    delivered = {e.value for e in events if isinstance(e, Delivered)}
    assert set(range(total)) - delivered == set()  # lost = acknowledged - distinct = 0
    assert {e.member for e in events if isinstance(e, Delivered)} == {"first", "second"}
    assert any(isinstance(e, Revoked) and e.member == "first" for e in events)
    duplicates = judge_handovers(events, dict(log))
    print(f"rebalance: {total} acknowledged, 0 lost, {duplicates} duplicates")


async def test_replay_reads_exactly_an_offset_range(kafka_bootstrap: str) -> None:
    topic = new_topic(kafka_bootstrap, 2)
    acks = await produce(kafka_bootstrap, topic, 400, 10)
    ends = end_offsets_from_acks(acks)
    assert sum(ends.values()) == 400
    ranges = [OffsetRange(topic, p, 50, min(150, ends[f"{topic}/{p}"])) for p in (0, 1)]
    expected = {value for value, ack in enumerate(acks) if 50 <= ack.offset < 150}
    group = f"replay-{uuid.uuid4()}"
    got: list[int] = []
    async with KafkaReplaySource(
        ranges, KafkaClientConfig(kafka_bootstrap), checkpoint_group=group
    ) as source:
        async for batch in source.batches():
            got.extend(int(r.data) for r in batch.records)
            await source.checkpoint(batch.partition, batch.records[-1].position)
    assert sorted(got) == sorted(expected)
    # Re-running the same job with the same namespace finds it finished: nothing read again.
    again: list[int] = []
    async with KafkaReplaySource(
        ranges, KafkaClientConfig(kafka_bootstrap), checkpoint_group=group
    ) as source:
        async for batch in source.batches():
            again.extend(int(r.data) for r in batch.records)
    assert again == []


async def test_lag_from_positions_and_delivery_offsets(kafka_bootstrap: str) -> None:
    topic = new_topic(kafka_bootstrap, 1)
    acks = await produce(kafka_bootstrap, topic, 300, 3)
    seen: list[tuple[str, int]] = []
    async with KafkaSource(
        [topic], KafkaClientConfig(kafka_bootstrap), group_config(f"g-{uuid.uuid4()}")
    ) as source:
        source.config  # noqa: B018 - the source is fully configured before reading
        await consume_until(source, seen, 1)
        positions = await source.positions()
    lag = consumer_lag(positions, end_offsets_from_acks(acks))
    assert lag[f"{topic}/0"] == 300 - positions[f"{topic}/0"]
    assert 0 <= lag[f"{topic}/0"] < 300


class LagRecorder:
    """Every ``kafka_lag_messages`` value per partition; ``at_end`` once each of ``partitions``
    reported 0."""

    def __init__(self, partitions: set[str]) -> None:
        self.partitions = partitions
        self.lags: dict[str, list[int]] = defaultdict(list)
        self.at_end = asyncio.Event()

    def on_event(self, name: str, value: float = 1.0, **dimensions: object) -> None:
        if name != KAFKA_LAG_MESSAGES:
            return
        self.lags[str(dimensions["partition"])].append(int(value))
        if all(self.lags.get(p, [-1])[-1] == 0 for p in self.partitions):
            self.at_end.set()


async def test_lag_in_messages_is_positive_part_way_and_zero_at_the_end(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The lag comes from the high watermark librdkafka caches from fetch responses (Tansu
    fills it correctly; its ListOffsets answer is what is wrong) and the consumer's position."""
    topic = new_topic(kafka_bootstrap, 2)
    ends = end_offsets_from_acks(await produce(kafka_bootstrap, topic, 6_000, 20))
    assert set(ends) == {f"{topic}/0", f"{topic}/1"}
    recorder = LagRecorder(set(ends))
    caplog.set_level(logging.INFO, logger="t.kafka.lag.wire")
    progress = ConsumeProgress(recorder, logger=logging.getLogger("t.kafka.lag.wire"))
    config = dataclasses.replace(group_config(f"g-{uuid.uuid4()}"), batch_max_messages=100)
    seen = 0
    async with KafkaSource([topic], KafkaClientConfig(kafka_bootstrap), config, observer=progress) as source:
        batches = source.batches()
        seen += len((await asyncio.wait_for(anext(batches), 30)).records)
        part_way = {p: lags[0] for p, lags in recorder.lags.items()}  # the first measurement
        assert part_way and seen < 6_000
        assert all(0 < lag <= ends[p] for p, lag in part_way.items()), (part_way, ends)
        progress.log()
        assert 0 < vars(caplog.records[-1])["max_lag_messages"] <= max(ends.values())

        async def read_on() -> None:  # to the end, and on: the idle fetches measure again
            nonlocal seen
            async for batch in batches:
                seen += len(batch.records)

        reading = asyncio.create_task(read_on())
        await asyncio.wait_for(recorder.at_end.wait(), 30)
        progress.log()  # before close() leaves the group: a revocation empties the lag
        line = vars(caplog.records[-1])
        await source.stop()
        await asyncio.wait_for(reading, 30)

    assert seen == 6_000
    assert (line["partitions"], line["caught_up"], line["max_lag_messages"]) == (2, 2, 0)
    caught_up = {vars(r)["partition"] for r in caplog.records if r.message == "caught up"}
    assert caught_up == set(ends)


async def test_record_event_id_travels_in_a_header(kafka_bootstrap: str) -> None:
    topic = new_topic(kafka_bootstrap, 1)
    key = EventIdKey("an-event-id-key-for-the-kafka-integration")
    async with KafkaProducer(
        topic, KafkaClientConfig(kafka_bootstrap), config=KafkaProducerConfig(event_id_key=key)
    ) as producer:
        await producer.send_and_wait(Record(b"v", partition_key="k", event_id="evt-1", headers={"a": b"b"}))
    seen: list[ConsumedRecord] = []
    config = dataclasses.replace(group_config(f"g-{uuid.uuid4()}"), event_id_key=key)
    async with KafkaSource([topic], KafkaClientConfig(kafka_bootstrap), config) as source:
        async for batch in source.batches():
            seen.extend(batch.records)
            break
    assert seen[0].event_id == "evt-1"
    assert seen[0].identity == "evt-1"  # signed by the producer, verified by the consumer
    assert seen[0].headers is not None and seen[0].headers["a"] == b"b"
    unkeyed: list[ConsumedRecord] = []
    async with KafkaSource(
        [topic], KafkaClientConfig(kafka_bootstrap), group_config(f"g-{uuid.uuid4()}")
    ) as source:
        async for batch in source.batches():
            unkeyed.extend(batch.records)
            break
    assert unkeyed[0].event_id == "evt-1" and unkeyed[0].identity == f"{topic}/0/0"


async def test_undeliverable_message_is_reported_within_the_delivery_timeout() -> None:
    # A closed port: nothing ever answers, so librdkafka gives up after message.timeout.ms.
    client = KafkaClientConfig("127.0.0.1:9", extra={"reconnect.backoff.max.ms": 100})
    config = KafkaProducerConfig(delivery_timeout_ms=500)
    async with KafkaProducer("nowhere", client, config=config) as producer:
        futures = [await producer.send(b"x", "k") for _ in range(3)]
        results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(result, DeliveryError) for result in results)


async def test_send_many_acks_name_where_each_message_landed(kafka_bootstrap: str) -> None:
    """Two batches through a local queue far smaller than a batch: back-pressure, not errors."""
    count, keys = 20_000, 97
    topic = new_topic(kafka_bootstrap, 4)
    config = KafkaProducerConfig(queue_max_messages=1_000)
    values = [f"{i}".encode() for i in range(count)]
    async with KafkaProducer(topic, KafkaClientConfig(kafka_bootstrap), config=config) as producer:
        half = count // 2
        first = await producer.send_many(values[:half], [f"key-{i % keys}" for i in range(half)])
        second = await producer.send_many(values[half:], [f"key-{i % keys}" for i in range(half, count)])
        batches = [await first, await second]
    assert all(acks.ok for acks in batches)
    acked = [(ack.partition, ack.offset) for acks in batches for ack in acks]

    landed: dict[int, tuple[int, int]] = {}
    async with KafkaSource(
        [topic], KafkaClientConfig(kafka_bootstrap), group_config(f"g-{uuid.uuid4()}")
    ) as source:
        async for batch in source.batches():
            for record in batch.records:
                assert isinstance(record.position, KafkaPosition)
                landed[int(record.data)] = (record.position.partition_id, record.position.offset)
            if len(landed) >= count:
                break
    assert [landed[i] for i in range(count)] == acked


def test_librdkafka_counts_reports_and_client_events_in_its_length(kafka_bootstrap: str) -> None:
    """What the delivery thread's idle wait rests on (producers._kafka_delivery): ``len(producer)``
    is 0 once every delivery report was served, and counts client events (``error_cb``) that
    wait for a ``poll()``, so an idle thread that only polls when it is not 0 delays neither."""
    from confluent_kafka import Producer

    topic = new_topic(kafka_bootstrap, 1)
    delivered: list[object] = []
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic, b"x", b"k", on_delivery=lambda err, msg: delivered.append(err))
    assert len(producer) == 1
    assert producer.flush(30) == 0
    assert delivered == [None]
    assert len(producer) == 0

    errors: list[object] = []
    unreachable = Producer({"bootstrap.servers": "127.0.0.1:1", "error_cb": errors.append, "log_level": 0})
    # The refused connection's error event is queued by librdkafka's own thread; nothing can
    # be awaited for it without serving it, so look at most 300 times, 10 ms apart.
    for _ in range(300):
        if len(unreachable):
            break
        time.sleep(0.01)
    assert len(unreachable) > 0 and not errors
    unreachable.poll(0)
    assert errors and len(unreachable) == 0


async def test_close_right_after_the_last_ack_returns(kafka_bootstrap: str) -> None:
    """The idle delivery thread waits on the event ``close()`` sets (not in ``poll()``): with a
    poll timeout of a minute, close still returns (a lost wake-up would hang it)."""
    topic = new_topic(kafka_bootstrap, 2)
    config = KafkaProducerConfig(poll_timeout_s=60)
    producer = KafkaProducer(topic, KafkaClientConfig(kafka_bootstrap), config=config)
    await producer.start()
    acks = await asyncio.wait_for(
        producer.send_many([b"%d" % i for i in range(100)], [f"key-{i % 7}" for i in range(100)]), 30
    )
    assert (await asyncio.wait_for(acks, 30)).ok
    single = await asyncio.wait_for(producer.send_and_wait(b"last", "key-0"), 30)
    assert single.topic == topic
    await asyncio.wait_for(producer.close(), 30)


@pytest.mark.timeout(120)
async def test_a_record_is_handed_out_when_it_arrives_not_when_the_poll_timeout_ends(
    kafka_bootstrap: str,
) -> None:
    """A waiting fetch returns with the first message: ``consume(1000, timeout)`` would hold
    each of these records for the whole 60 s poll timeout (it waits for 1,000 messages)."""
    topic = new_topic(kafka_bootstrap, 2)
    client = KafkaClientConfig(kafka_bootstrap)
    config = KafkaConsumerConfig(
        group_id=f"g-{uuid.uuid4()}", session_timeout_ms=SESSION_MS, poll_timeout_s=60.0
    )
    async with KafkaSource([topic], client, config) as source, KafkaProducer(topic, client) as producer:
        batches = source.batches()
        for n in range(3):
            await producer.send_and_wait(f"{n}".encode(), b"one-key")
            batch = await asyncio.wait_for(anext(batches), 30)  # the first includes the group join
            assert [int(record.data) for record in batch.records] == [n]
        await batches.aclose()


def _write_transactions(bootstrap: str, topic: str) -> None:
    """Offsets 0-4: a committed transaction's records, 5 its commit marker; 6-8 an aborted
    transaction's records, 9 its abort marker.  The high watermark is 10; no message sits at
    offsets 5, 6, 7, 8 or 9 for a read_committed consumer."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"tx-{uuid.uuid4()}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for n in range(5):
        producer.produce(topic, f"{n}".encode(), b"k")
    producer.commit_transaction(30)
    producer.begin_transaction()
    for n in range(5, 8):
        producer.produce(topic, f"{n}".encode(), b"k")
    producer.flush(30)
    producer.abort_transaction(30)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("end", [6, 10], ids=["commit-marker-last", "aborted-records-last"])
async def test_a_replay_ends_when_the_last_offsets_of_its_range_hold_no_message(
    kafka_bootstrap: str, end: int
) -> None:
    """A range up to the high watermark of a transactionally written partition ends with a
    transaction marker (and here aborted records): no message is ever delivered at its last
    offset.  The replay ends at the end of what the partition holds instead of waiting."""
    topic = new_topic(kafka_bootstrap, 1)
    await asyncio.to_thread(_write_transactions, kafka_bootstrap, topic)
    got: list[int] = []

    async def replay() -> None:
        ranges = [OffsetRange(topic, 0, 0, end)]
        async with KafkaReplaySource(
            ranges, KafkaClientConfig(kafka_bootstrap), poll_timeout_s=0.2
        ) as source:
            async for batch in source.batches():
                got.extend(int(r.data) for r in batch.records)

    await asyncio.wait_for(replay(), 60)
    assert got[:5] == [0, 1, 2, 3, 4]
    # A broker lists aborted transactions in its fetch responses and librdkafka drops their
    # records under read_committed; the local broker lists none, so it hands them out too.
    assert set(got[5:]) <= ({5, 6, 7} if end == 10 else set())


async def test_a_create_time_past_the_year_9999_is_read_without_an_arrival(kafka_bootstrap: str) -> None:
    """Any producer sets CreateTime, and the broker takes any value: a record from "the year
    10000" arrives with its data and position and no arrival time, between two ordinary ones
    (building its datetime raised ValueError for the whole batch, at every restart)."""
    from confluent_kafka import Producer

    topic = new_topic(kafka_bootstrap, 1)
    raw = Producer({"bootstrap.servers": kafka_bootstrap})
    for value, timestamp in ((b"0", None), (b"1", 253_402_300_800_000), (b"2", None)):
        if timestamp is None:
            raw.produce(topic, value, b"k")
        else:
            raw.produce(topic, value, b"k", timestamp=timestamp)
    assert raw.flush(30) == 0
    records: list[ConsumedRecord] = []
    client = KafkaClientConfig(kafka_bootstrap)
    async with KafkaSource([topic], client, group_config(f"g-{uuid.uuid4()}")) as source:

        async def read() -> None:
            async for batch in source.batches():
                records.extend(batch.records)
                if len(records) >= 3:
                    return

        await asyncio.wait_for(read(), 60)
    assert [r.data for r in records] == [b"0", b"1", b"2"]
    assert records[1].arrival_time is None
    assert records[0].arrival_time is not None and records[2].arrival_time is not None
