"""Replay Kafka offset ranges (or time ranges resolved to offsets) through the bounded Kafka source.

Each partition is read by its own :class:`consumers.kafka.KafkaReplaySource` over
``[start, end)``, from the job's resume token (the last offset written) instead of the
range's start when the job resumes.  The job's checkpoints stay in its own store: the
source is given no consumer group to commit to, so a live consumer group is never touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

from consumers._kafka_thread import ConsumerThread
from consumers.kafka import KafkaReplaySource, OffsetRange, ranges_for_times
from shardline.errormap import map_kafka_errors
from shardline.errors import ConfigurationError, MissingResourceError, ResourceNotFoundError
from shardline.kafka_config import KafkaClientConfig
from shardline.records import ConsumedRecord, KafkaPosition

__all__ = ["KafkaRangeReader", "check_partitions", "check_range", "offset_ranges"]

SourceFactory = Callable[[Sequence[OffsetRange], KafkaClientConfig], KafkaReplaySource]


def _default_source(ranges: Sequence[OffsetRange], client: KafkaClientConfig) -> KafkaReplaySource:
    return KafkaReplaySource(ranges, client, batch_max_messages=500)


class KafkaRangeReader:
    """A :class:`consumers.replay.ranges.RangeReader` over fixed Kafka offset ranges."""

    def __init__(
        self,
        ranges: Sequence[OffsetRange],
        client: KafkaClientConfig,
        *,
        source_factory: SourceFactory = _default_source,
    ) -> None:
        if not ranges:
            raise ConfigurationError("a Kafka replay needs at least one offset range")
        self.ranges = {r.name: r for r in ranges}
        if len(self.ranges) != len(ranges):
            raise ConfigurationError("each partition may appear in only one offset range")
        self.client = client
        self._source_factory = source_factory

    def __repr__(self) -> str:
        return f"KafkaRangeReader(partitions={sorted(self.ranges)!r})"

    async def partitions(self) -> list[str]:
        return sorted(self.ranges)

    async def read(
        self, partition: str, after: str | None
    ) -> AsyncIterator[tuple[Sequence[ConsumedRecord], str]]:
        bound = self.ranges[partition]
        start = bound.start if after is None else max(bound.start, int(after) + 1)
        if start >= bound.end:
            return
        remaining = OffsetRange(bound.topic, bound.partition, start, bound.end)
        source = self._source_factory([remaining], self.client)
        try:
            async for batch in source.batches():
                if batch.records:
                    last = batch.records[-1].position
                    assert isinstance(last, KafkaPosition)
                    yield batch.records, str(last.offset)
        finally:
            await source.close()


def check_range(
    from_offset: int | None,
    to_offset: int | None,
    from_time: datetime | None,
    to_time: datetime | None,
    *,
    now: datetime | None = None,
) -> bool:
    """Refuse a contradictory range before any network call; ``True`` when it is by offsets.

    A time range must end by ``now`` (default: the clock): its offsets are resolved once, when
    the job starts, and one ending in the future ended at the partitions' ends of that moment.
    The job finished there with exit status 0, and a rerun found every partition complete, so
    the records written later within the window were never replayed under the job's name.
    """
    by_offset = from_offset is not None or to_offset is not None
    by_time = from_time is not None or to_time is not None
    # A Kafka replay has no default range (a Kinesis one reads from the trim horizon to the
    # tip): the message names the options to give, not only the two kinds of range.
    if not by_offset and not by_time:
        raise ConfigurationError(
            "a Kafka replay needs a range: --from-offset and --to-offset, or --from-time and --to-time"
        )
    if by_offset and by_time:
        raise ConfigurationError(
            "a Kafka replay takes offsets (--from-offset, --to-offset) or times (--from-time, --to-time), "
            "not both"
        )
    if by_offset:
        if from_offset is None or to_offset is None:
            raise ConfigurationError("a Kafka offset range needs --from-offset and --to-offset")
        if not 0 <= from_offset <= to_offset:
            raise ConfigurationError("Kafka offsets must satisfy 0 <= from-offset <= to-offset")
        return True
    if from_time is None or to_time is None:
        raise ConfigurationError("a Kafka time range needs --from-time and --to-time")
    if from_time.tzinfo is None or to_time.tzinfo is None:
        raise ConfigurationError("range times must be timezone-aware")
    if to_time > (now or datetime.now(UTC)):
        raise ConfigurationError(
            "a Kafka time range must end in the past: it is resolved to offsets when the job starts, "
            "so records written later within it would never be replayed (a rerun finds the "
            "partitions complete); give a --to-time that has passed"
        )
    return False


async def offset_ranges(
    client: KafkaClientConfig,
    topic: str,
    *,
    partitions: Sequence[int] = (),
    from_offset: int | None = None,
    to_offset: int | None = None,
    from_time: datetime | None = None,
    to_time: datetime | None = None,
) -> list[OffsetRange]:
    """The offset ranges a replay covers, by offsets or by timestamps (not both).

    By offsets, the same ``[from_offset, to_offset)`` applies to each of ``partitions``
    (default: every partition of the topic).  By timestamps, ``offsets_for_times``
    resolves both ends on the broker.
    Bad combinations raise :class:`ConfigurationError` before any network call; a partition
    the topic does not have, :class:`~shardline.errors.MissingResourceError`.
    """
    by_offset = check_range(from_offset, to_offset, from_time, to_time)
    if by_offset:
        assert from_offset is not None and to_offset is not None
        chosen = check_partitions(topic, partitions, await _all_partitions(client, topic))
        return [OffsetRange(topic, p, from_offset, to_offset) for p in chosen]
    assert from_time is not None and to_time is not None
    from confluent_kafka import Consumer

    loop = asyncio.get_running_loop()
    thread = ConsumerThread("shardline-replay-resolve")
    conf = {**client.to_confluent(), "group.id": "shardline-replay-resolve"}
    try:
        consumer = await loop.run_in_executor(thread, client.new_client, Consumer, conf)
    except BaseException:
        thread.shutdown(wait=False)
        raise
    try:
        return await loop.run_in_executor(
            thread,
            lambda: ranges_for_times(
                consumer, topic, from_time, to_time, partitions=list(partitions) or None
            ),
        )
    finally:
        await thread.close_consumer(consumer.close, timeout_s=client.consumer_close_timeout_s, topic=topic)


def check_partitions(topic: str, named: Sequence[int], existing: Sequence[int]) -> list[int]:
    """``named`` (default: ``existing``), each a partition the topic has.

    A reader assigned a partition that does not exist waits for its records forever: the job
    hung instead of saying the ``--partition`` was wrong.
    """
    missing = sorted(set(named) - set(existing))
    if missing:
        raise MissingResourceError("Kafka partition", f"{topic}/{missing[0]}", "--partition", service="kafka")
    return list(named) or list(existing)


async def _all_partitions(client: KafkaClientConfig, topic: str) -> list[int]:
    """Every partition of ``topic`` (from the cluster's metadata; never creates the topic)."""
    from confluent_kafka.admin import AdminClient

    def lookup() -> list[int]:
        admin = client.new_client(AdminClient)
        with map_kafka_errors():  # brokers out of reach: _TRANSPORT after the timeout
            metadata = admin.list_topics(timeout=10)
        found = metadata.topics.get(topic)
        if found is None or not found.partitions:
            raise ResourceNotFoundError(f"Kafka topic {topic!r} does not exist", service="kafka")
        return sorted(found.partitions)

    return await asyncio.to_thread(lookup)
