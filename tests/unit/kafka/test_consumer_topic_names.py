"""Every Kafka reader refuses a topic name the broker would refuse, before any client is made.

librdkafka takes any name: a consumer subscribed to ``"readings "`` or ``"a/b"`` joined its group,
was assigned nothing and read nothing, with no error; ``tail`` and ``replay`` asked the broker
for metadata first and said only that the topic did not exist.  A pattern (``^...``, which
librdkafka would take as a regular expression) is refused by name: every reader here follows
the partitions of named topics.
"""

from __future__ import annotations

from typing import Any

import pytest

from consumers.cli import parse_kafka_uri
from consumers.kafka import KafkaConsumerConfig, KafkaSource, OffsetRange
from consumers.tail.kafka import KafkaFollower, KafkaStart
from shardline.errors import ConfigurationError, ValidationError
from shardline.kafka_config import KafkaClientConfig

_BAD = ["readings ", "a/b", "..", "x" * 250, "tëlemetry", "^telemetry.*"]


def _refusing_factory(conf: dict[str, Any]) -> Any:
    raise AssertionError("a client was made for a topic name the broker refuses")


@pytest.mark.parametrize("name", _BAD)
def test_kafka_source_refuses_a_bad_topic_name_before_making_a_client(name: str) -> None:
    with pytest.raises(ValidationError):
        KafkaSource(
            ["telemetry", name],
            KafkaClientConfig("127.0.0.1:9"),
            KafkaConsumerConfig(group_id="g"),
            consumer_factory=_refusing_factory,
        )


def test_a_pattern_is_refused_in_words_that_say_so() -> None:
    with pytest.raises(ValidationError, match="pattern"):
        KafkaSource(
            ["^telemetry.*"],
            KafkaClientConfig("127.0.0.1:9"),
            KafkaConsumerConfig(group_id="g"),
            consumer_factory=_refusing_factory,
        )


@pytest.mark.parametrize("name", _BAD)
def test_offset_ranges_and_tail_refuse_a_bad_topic_name(name: str) -> None:
    with pytest.raises(ValidationError):
        OffsetRange(name, 0, 0, 10)
    with pytest.raises(ValidationError):
        KafkaFollower(KafkaClientConfig("127.0.0.1:9"), name, KafkaStart("earliest"))


@pytest.mark.parametrize("name", ["a%2Fb", "readings%20", "t%C3%ABlemetry"])
def test_the_kafka_uri_refuses_a_bad_topic_name_as_a_mistake_in_the_uri(name: str) -> None:
    with pytest.raises(ConfigurationError, match="topic"):
        parse_kafka_uri(f"kafka://127.0.0.1:9092/{name}?group=g")


def test_good_names_still_pass() -> None:
    source = KafkaSource(
        ["telemetry", "a.b_c-D9"],
        KafkaClientConfig("127.0.0.1:9"),
        KafkaConsumerConfig(group_id="g"),
        consumer_factory=lambda conf: object(),
    )
    assert source.topics == ("telemetry", "a.b_c-D9")
    assert parse_kafka_uri("kafka://127.0.0.1:9092/a.b,c?group=g").topics == ("a.b", "c")
