"""The `consume` progress line for a Kafka source: the partitions the group assigned, no lag.

A Kafka batch carries no ``millis_behind_latest``, so a line that counted lag reports showed
``partitions=0`` (and ``caught_up=0``) while records flowed from every partition.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from consumers.kafka import KafkaConsumerConfig, KafkaSource
from consumers.progress import ConsumeProgress
from shardline.kafka_config import KafkaClientConfig


class _IdleConsumer:
    """Enough of confluent_kafka.Consumer for a source whose rebalance callbacks are driven here."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf

    def commit(self, asynchronous: bool = False) -> None:
        return None

    def close(self) -> None:
        return None


def _partitions(*ids: int) -> list[TopicPartition]:
    return [TopicPartition("telemetry", i) for i in ids]


def _last_line(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    line = caplog.records[-1]
    assert line.message == "progress"
    return vars(line)


def test_kafka_progress_counts_assigned_partitions_across_rebalances(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="t.kafka.progress")
    progress = ConsumeProgress(logger=logging.getLogger("t.kafka.progress"))
    source = KafkaSource(
        ["telemetry"],
        KafkaClientConfig(bootstrap_servers="127.0.0.1:9"),
        KafkaConsumerConfig(group_id="g"),
        observer=progress,
        consumer_factory=_IdleConsumer,
    )
    source._on_assign(None, _partitions(0, 1, 2, 3))
    for partition in ("telemetry/0", "telemetry/3"):
        progress.on_event("records_in", 10, topic="telemetry", partition=partition)
    progress.log()
    seen = _last_line(caplog)
    assert (seen["partitions"], seen["records_in"]) == (4, 20)
    assert "caught_up" not in seen and "max_lag_ms" not in seen  # Kafka reports no lag

    source._on_revoke(None, _partitions(2, 3))  # a cooperative rebalance moves two away
    progress.log()
    assert _last_line(caplog)["partitions"] == 2

    source._on_revoke(None, _partitions(0, 1))  # an eager one revokes all, then assigns anew
    source._on_assign(None, _partitions(0, 1, 2))
    progress.log()
    assert _last_line(caplog)["partitions"] == 3


def test_kinesis_progress_still_counts_shards_that_reported_lag(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="t.kinesis.progress")
    progress = ConsumeProgress(logger=logging.getLogger("t.kinesis.progress"))
    progress.on_event("iterator_age_ms", 0, stream="s", partition="shardId-0")
    progress.on_event("iterator_age_ms", 900, stream="s", partition="shardId-1")
    progress.log()
    seen = _last_line(caplog)
    assert (seen["partitions"], seen["caught_up"], seen["max_lag_ms"]) == (2, 1, 900)
