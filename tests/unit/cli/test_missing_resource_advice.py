"""The one line a missing stream or topic prints tells the user what to fix for that service.

A Kafka topic was found missing with "fix the name and the region/endpoint": a Kafka client has
no region, and the address it needs is the bootstrap servers of ``kafka://BOOTSTRAP/TOPIC``.
"""

from __future__ import annotations

from shardline.errors import MissingResourceError


def test_a_missing_kafka_topic_points_at_the_bootstrap_servers() -> None:
    message = str(MissingResourceError("Kafka topic", "telemetry", "the TARGET argument", service="kafka"))
    assert "'telemetry' (named by the TARGET argument) does not exist" in message
    assert message.endswith("fix the name and the bootstrap servers")
    assert "region" not in message


def test_a_missing_kinesis_stream_points_at_the_region_and_endpoint() -> None:
    missing = MissingResourceError("Kinesis stream", "telemtry", "the SOURCE argument", service="kinesis")
    message = str(missing)
    assert message == (
        "Kinesis stream 'telemtry' (named by the SOURCE argument) does not exist: create it, or fix "
        "the name and the region/endpoint"
    )
