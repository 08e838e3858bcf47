"""Measuring a Kafka partition's lag in messages from what the client already holds.

``LagSampler`` reads the consumer's position and librdkafka's cached high watermark (-1001,
``OFFSET_INVALID``, until known), at most once per interval and at once after a rebalance.
The consumer double answers from dictionaries and records every watermark read.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException, TopicPartition

from consumers._kafka_lag import LagSampler


class CachedConsumer:
    """Positions and cached watermarks per ``(topic, partition)``; unknown ones are invalid."""

    def __init__(self) -> None:
        self.positions: dict[tuple[str, int], int] = {}
        self.watermarks: dict[tuple[str, int], tuple[int, int]] = {}
        self.unknown: set[tuple[str, int]] = set()
        self.watermark_reads: list[tuple[str, int, bool]] = []

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(
                tp.topic, tp.partition, self.positions.get((tp.topic, tp.partition), OFFSET_INVALID)
            )
            for tp in partitions
        ]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float | None = None, cached: bool = False
    ) -> tuple[int, int]:
        key = (partition.topic, partition.partition)
        self.watermark_reads.append((*key, cached))
        if key in self.unknown:
            raise KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION))
        return self.watermarks.get(key, (OFFSET_INVALID, OFFSET_INVALID))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _sampler(interval_s: float = 1.0) -> tuple[LagSampler, CachedConsumer, Clock]:
    consumer, clock = CachedConsumer(), Clock()
    return LagSampler(consumer, interval_s, clock=clock), consumer, clock


def _tps(*ids: int, topic: str = "t") -> list[Any]:
    return [TopicPartition(topic, i) for i in ids]


def test_lag_is_the_cached_high_watermark_minus_the_position() -> None:
    sampler, consumer, _ = _sampler()
    sampler.assigned(_tps(0, 1))
    consumer.positions = {("t", 0): 40, ("t", 1): 7}
    consumer.watermarks = {("t", 0): (0, 100), ("t", 1): (0, 7)}
    assert sampler.sample() == [("t", "t/0", 60), ("t", "t/1", 0)]
    assert consumer.watermark_reads and all(cached for *_, cached in consumer.watermark_reads)


def test_partitions_not_fetched_yet_are_left_out_and_the_measurement_stays_due() -> None:
    sampler, consumer, clock = _sampler(interval_s=60.0)
    sampler.assigned(_tps(0, 1))
    assert sampler.sample() == []  # before the first fetch response: -1001 everywhere
    assert sampler.sample() == []
    consumer.watermarks = {("t", 0): (0, 50)}  # t/0's first fetch answered, nothing read yet
    assert sampler.sample() == []  # where t/0 starts is not known: not "50 behind"
    consumer.positions = {("t", 0): 20}
    assert sampler.sample() == [("t", "t/0", 30)]  # the first value, without waiting a minute
    consumer.positions = {("t", 0): 50}
    clock.now += 59.0
    assert sampler.sample() == []  # measured less than an interval ago


def test_an_empty_partition_is_at_its_end_before_anything_was_read() -> None:
    sampler, consumer, _ = _sampler()
    sampler.assigned(_tps(0, 1))
    consumer.watermarks = {("t", 0): (12, 12), ("t", 1): (0, 9)}
    assert sampler.sample() == [("t", "t/0", 0)]


def test_a_measurement_is_made_once_per_interval_and_at_once_after_a_rebalance() -> None:
    sampler, consumer, clock = _sampler(interval_s=1.0)
    sampler.assigned(_tps(0))
    consumer.positions, consumer.watermarks = {("t", 0): 1}, {("t", 0): (0, 5)}
    assert sampler.sample() == [("t", "t/0", 4)]
    consumer.positions = {("t", 0): 5}
    clock.now += 0.5
    assert sampler.sample() == []
    clock.now += 0.5
    assert sampler.sample() == [("t", "t/0", 0)]

    sampler.assigned(_tps(1))  # a rebalance half an interval later
    consumer.positions[("t", 1)] = 3
    consumer.watermarks[("t", 1)] = (0, 4)
    clock.now += 0.5
    assert sampler.sample() == [("t", "t/0", 0), ("t", "t/1", 1)]


def test_a_revoked_partition_is_not_measured_any_more() -> None:
    sampler, consumer, _ = _sampler()
    sampler.assigned(_tps(0, 1, 2))
    consumer.positions = {("t", p): 0 for p in range(3)}
    consumer.watermarks = {("t", p): (0, 10 * (p + 1)) for p in range(3)}
    assert [name for _, name, _ in sampler.sample()] == ["t/0", "t/1", "t/2"]
    sampler.revoked(_tps(2))  # a cooperative rebalance moves the most behind away
    consumer.watermark_reads.clear()
    assert sampler.sample() == [("t", "t/0", 10), ("t", "t/1", 20)]
    assert {(t, p) for t, p, _ in consumer.watermark_reads} == {("t", 0), ("t", 1)}
    sampler.revoked(_tps(0, 1))
    assert sampler.sample() == []
    sampler.assigned(_tps(0, 1, 2))  # an eager rebalance gives them all back
    assert len(sampler.sample()) == 3


def test_a_partition_the_client_no_longer_knows_is_skipped_not_raised() -> None:
    sampler, consumer, _ = _sampler()
    sampler.assigned(_tps(0, 1))
    consumer.positions = {("t", 0): 3, ("t", 1): 3}
    consumer.watermarks = {("t", 0): (0, 3), ("t", 1): (0, 8)}
    consumer.unknown = {("t", 0)}
    assert sampler.sample() == [("t", "t/1", 5)]


def test_assigning_a_partition_twice_measures_it_once() -> None:
    sampler, consumer, _ = _sampler()
    sampler.assigned(_tps(0))
    sampler.assigned([*_tps(0), *_tps(0, topic="u")])
    consumer.positions = {("t", 0): 1, ("u", 0): 1}
    consumer.watermarks = {("t", 0): (0, 2), ("u", 0): (0, 4)}
    assert sampler.sample() == [("t", "t/0", 1), ("u", "u/0", 3)]
