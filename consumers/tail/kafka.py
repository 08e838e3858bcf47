"""Follow the partitions of a Kafka topic without joining a consumer group or committing.

Partitions are assigned directly (no group membership, no rebalance, nothing committed), each
from earliest, latest, a timestamp (``offsets_for_times``) or an offset.  "The tip" is where
the broker's fetch responses say a partition ends (librdkafka's partition-EOF event), which
stays right on brokers whose ListOffsets answer lags.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consumers._kafka_messages import to_batches
from consumers._kafka_replay import topic_gone
from consumers._kafka_thread import ConsumerThread
from consumers.source import SourceBatch
from shardline.errormap import from_kafka_error
from shardline.errors import ConfigurationError, ResourceNotFoundError, ShardlineError
from shardline.kafka_config import KafkaClientConfig
from shardline.validation import validate_topic_name

__all__ = ["KafkaFollower", "KafkaStart"]

_OFFSET_BEGINNING = -2  # librdkafka's logical offsets
_OFFSET_END = -1


@dataclass(frozen=True, slots=True)
class KafkaStart:
    """Where each partition starts: ``earliest``, ``latest``, a timestamp, or an offset."""

    kind: str  # "earliest" | "latest" | "timestamp" | "offset"
    timestamp: datetime | None = None
    offset: int | None = None


class KafkaFollower:
    """Yields the topic's batches, per partition in offset order, until stopped (or at the tip)."""

    def __init__(
        self,
        client: KafkaClientConfig,
        topic: str,
        start: KafkaStart,
        *,
        partitions: Sequence[int] = (),
        until_tip: bool = False,
        poll_timeout_s: float = 0.2,
    ) -> None:
        validate_topic_name(topic)
        if start.kind == "offset" and len(partitions) != 1:
            raise ConfigurationError("an offset start belongs to one partition: give exactly one --partition")
        self._client = client
        self._topic = topic
        self._start = start
        self._partitions = list(partitions)
        self._until_tip = until_tip
        self._poll_timeout = poll_timeout_s
        self._stopped = False

    async def stop(self) -> None:
        """End :meth:`batches` after the poll in progress (at most ``poll_timeout_s``)."""
        self._stopped = True

    async def batches(self) -> AsyncIterator[SourceBatch]:
        from confluent_kafka import Consumer, KafkaError

        loop = asyncio.get_running_loop()
        executor = ConsumerThread("shardline-tail-kafka")
        conf = {
            **self._client.to_confluent(),
            "group.id": "shardline-tail",  # required by librdkafka; never joined or committed
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": self._until_tip,
            "fetch.queue.backoff.ms": 10,
        }
        consumer = self._client.new_client(Consumer, conf)
        try:
            remaining = await loop.run_in_executor(executor, self._assign, consumer)
            while remaining and not self._stopped:
                messages = await loop.run_in_executor(executor, consumer.consume, 1000, self._poll_timeout)
                records = []
                gone: tuple[ResourceNotFoundError, ShardlineError] | None = None
                for msg in messages:
                    err = msg.error()
                    if err is None:
                        records.append(msg)
                    elif err.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(msg.partition())
                    else:
                        mapped = from_kafka_error(err)
                        if err.fatal():
                            raise mapped
                        if isinstance(mapped, ResourceNotFoundError) and msg.topic() == self._topic:
                            gone = gone or (topic_gone(self._topic, err), mapped)
                for batch in to_batches(records):
                    yield batch
                if gone is not None:  # after the records the same fetch read before it
                    raise gone[0] from gone[1]
        finally:
            await executor.close_consumer(
                consumer.close, timeout_s=self._client.consumer_close_timeout_s, topic=self._topic
            )

    def _assign(self, consumer: Any) -> set[int]:
        """Assign every chosen partition at its start; the partitions (blocking: off the loop)."""
        from confluent_kafka import TopicPartition

        metadata = consumer.list_topics(timeout=10)
        described = metadata.topics.get(self._topic)
        if described is None or not described.partitions:
            raise ResourceNotFoundError(f"Kafka topic {self._topic!r} does not exist", service="kafka")
        partitions = self._partitions or sorted(described.partitions)
        unknown = set(partitions) - set(described.partitions)
        if unknown:
            raise ConfigurationError(f"topic {self._topic!r} has no partition {sorted(unknown)}")
        kind = self._start.kind
        if kind == "timestamp":
            assert self._start.timestamp is not None
            millis = int(self._start.timestamp.timestamp() * 1000)
            found = consumer.offsets_for_times(
                [TopicPartition(self._topic, p, millis) for p in partitions], 10
            )
            # no message at or after the time: start at the end
            starts = [TopicPartition(self._topic, tp.partition, tp.offset if tp.offset >= 0 else _OFFSET_END)
                      for tp in found]  # fmt: skip
        else:
            offset = {"earliest": _OFFSET_BEGINNING, "latest": _OFFSET_END}.get(kind, self._start.offset)
            assert offset is not None
            if kind == "offset":
                self._refuse_a_deleted_offset(consumer, partitions[0], offset)
            starts = [TopicPartition(self._topic, p, offset) for p in partitions]
        consumer.assign(starts)
        return set(partitions)

    def _refuse_a_deleted_offset(self, consumer: Any, partition: int, offset: int) -> None:
        """Raise when ``--start offset:N`` is below the partition's earliest offset.

        Kafka answers a fetch below the log's start (records removed by retention) with
        ``OFFSET_OUT_OF_RANGE``, and librdkafka then resets to its default, the partition's
        end: ``tail`` printed only records written from then on, everything from the earliest
        offset on skipped without a word.
        """
        from confluent_kafka import TopicPartition

        low, _high = consumer.get_watermark_offsets(
            TopicPartition(self._topic, partition), timeout=10, cached=False
        )
        if offset < low:
            raise ConfigurationError(
                f"offset {offset} of {self._topic}/{partition} no longer exists: the partition now "
                f"starts at offset {low} (removed by retention or deleted); give --start offset:{low} "
                "or later, or --start trim_horizon"
            )
