"""What the confluent_kafka.Consumer doubles answer when a KafkaSource measures partition lag.

A source measures each owned partition's lag after its ``consume()`` calls, from the client's
``position()`` and cached ``get_watermark_offsets()``.  Doubles of tests about something else
mix in :class:`NothingFetchedYet`: the answers of a client before any fetch response, so no
lag is reported and nothing else changes.
"""

from __future__ import annotations

from confluent_kafka import OFFSET_INVALID, TopicPartition

__all__ = ["NothingFetchedYet"]


class NothingFetchedYet:
    """No position and no watermark known for any partition."""

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition) for tp in partitions]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float | None = None, cached: bool = False
    ) -> tuple[int, int]:
        assert cached, "a lag measurement asks the broker nothing"
        return OFFSET_INVALID, OFFSET_INVALID
