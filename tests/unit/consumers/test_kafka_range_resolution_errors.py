"""Resolving a Kafka replay's ranges: brokers out of reach and unknown topics are typed errors.

``ranges_for_times`` (a replay by timestamps) and the partition lookup of a replay by offsets
let confluent-kafka's ``KafkaException`` through (``_TRANSPORT`` after their 10 s timeout with
the brokers out of reach), and an unknown topic resolved to no range at all, refused later as
"give at least one offset range".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import confluent_kafka.admin
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from consumers.kafka import ranges_for_times
from consumers.replay.kafka_range import offset_ranges
from shardline.errors import ResourceNotFoundError, ServiceError, TransientServiceError, ValidationError
from shardline.kafka_config import KafkaClientConfig

END = datetime(2025, 1, 1, tzinfo=UTC)
START = END - timedelta(hours=1)


def _transport_failure(*_args: Any, **_kwargs: Any) -> Any:
    raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))


class Unreachable:
    list_topics = staticmethod(_transport_failure)
    offsets_for_times = staticmethod(_transport_failure)


class NoSuchTopic:
    def list_topics(self, topic: str, timeout: float) -> Any:
        error = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
        return SimpleNamespace(topics={topic: SimpleNamespace(partitions={}, error=error)})


@pytest.mark.parametrize("partitions", [None, [0]], ids=["metadata", "offsets-for-times"])
def test_brokers_out_of_reach_are_a_transient_service_error(partitions: list[int] | None) -> None:
    with pytest.raises(TransientServiceError) as raised:
        ranges_for_times(Unreachable(), "t", START, END, partitions=partitions)
    assert isinstance(raised.value.__cause__, KafkaException)


def test_an_unknown_topic_is_not_found() -> None:
    with pytest.raises(ResourceNotFoundError, match="'t'"):
        ranges_for_times(NoSuchTopic(), "t", START, END)


async def test_the_partition_lookup_of_an_offset_replay_is_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    class UnreachableAdmin:
        def __init__(self, conf: dict[str, Any]) -> None:
            pass

        list_topics = staticmethod(_transport_failure)

    monkeypatch.setattr(confluent_kafka.admin, "AdminClient", UnreachableAdmin)
    with pytest.raises(TransientServiceError):
        await offset_ranges(KafkaClientConfig("127.0.0.1:9"), "t", from_offset=0, to_offset=5)


class LeaderAway:
    """``offsets_for_times`` answering partition 1 with its own error (offset -1001)."""

    def offsets_for_times(self, partitions: list[Any], timeout: float) -> list[Any]:
        answers = []
        for tp in partitions:
            answer = TopicPartition(tp.topic, tp.partition, 5 if tp.partition == 0 else -1001)
            if tp.partition == 1:
                answer = SimpleNamespace(
                    topic=tp.topic,
                    partition=1,
                    offset=-1001,
                    error=KafkaError(KafkaError.LEADER_NOT_AVAILABLE),
                )
            answers.append(answer)
        return answers


def test_a_partition_answering_with_an_error_is_that_error_not_a_bad_range() -> None:
    with pytest.raises(ServiceError) as raised:
        ranges_for_times(LeaderAway(), "t", START, END, partitions=[0, 1])
    assert not isinstance(raised.value, ValidationError)
    assert raised.value.code == "LEADER_NOT_AVAILABLE"
