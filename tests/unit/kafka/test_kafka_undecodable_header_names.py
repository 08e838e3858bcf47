"""A message whose header names are not UTF-8 is still a record, not a stopped consumer.

Kafka header names are bytes on the wire.  confluent-kafka 2.x decodes them as UTF-8 when
``Message.headers()`` is called and, for a name that is not, raises ``SystemError``
("returned a result with an exception set", the ``UnicodeDecodeError`` as its context)
for the whole list -- observed against the local broker with a record written by another
client.  Built lazily, the records raised that bare error out of the pipeline's read of the
batch, at the same offset on every start.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from confluent_kafka import Message

from consumers import _kafka_messages
from consumers._kafka_messages import KafkaRecords, lazy_batches, to_batches
from shardline.eventid import EventIdKey
from shardline.kafka_config import EVENT_ID_HEADER
from shardline.lograte import RepeatedWarning
from shardline.records import KafkaPosition


class UndecodableHeaders(Message):  # type: ignore[misc]
    """A fetched message whose header list holds a name that is not UTF-8."""

    def headers(self) -> Any:
        try:
            b"\xff\xfename".decode("utf-8")
        except UnicodeDecodeError:
            raise SystemError(
                "<method 'headers' of 'confluent_kafka.cimpl.Message' objects>"
                " returned a result with an exception set"
            ) from None
        raise AssertionError("unreachable")


def fetched(offset: int, *, bad: bool = False) -> Message:
    kind = UndecodableHeaders if bad else Message
    fields: dict[str, Any] = {
        "key": b"device-1",
        "value": f"v{offset}".encode(),
        "timestamp": (1, 1_700_000_000_000),
    }
    if not bad:
        fields["headers"] = [(EVENT_ID_HEADER, f"evt-{offset}".encode())]
    return kind(topic="telemetry", partition=0, offset=offset, **fields)  # type: ignore[no-any-return]


@pytest.mark.parametrize("build", [to_batches, lazy_batches])
def test_the_record_keeps_its_data_and_position_without_headers(
    build: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a warning of this kind is logged once a minute: each case starts a fresh minute
    monkeypatch.setattr(_kafka_messages, "_header_warnings", RepeatedWarning(_kafka_messages.log))
    key = EventIdKey("an-event-id-key-of-at-least-32-characters")
    with caplog.at_level(logging.WARNING, logger="consumers._kafka_messages"):
        records = list(build([fetched(1), fetched(2, bad=True), fetched(3)], event_id_key=key)[0].records)
    assert [record.data for record in records] == [b"v1", b"v2", b"v3"]
    positions = [record.position for record in records]
    assert all(isinstance(position, KafkaPosition) for position in positions)
    assert [position.offset for position in positions if isinstance(position, KafkaPosition)] == [1, 2, 3]
    assert records[1].partition_key == "device-1"
    assert records[1].headers is None and records[1].event_id is None
    assert not records[1].event_id_verified
    assert records[0].event_id == "evt-1" and records[2].event_id == "evt-3"
    assert any("telemetry/0@2" in line and "not UTF-8" in line for line in caplog.messages)


def test_indexing_the_one_record_does_not_raise_either() -> None:
    lone = KafkaRecords([fetched(7, bad=True)], "telemetry", 0)
    assert lone[0].data == b"v7" and lone[0].headers is None
