"""Adapters and untrusted bytes: refused aggregates dead-lettered whole, no second expansion."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from consumers.adapters.lambda_handler import make_handler
from consumers.sinks.base import DeadLetterEntry
from shardline._kpl_pb import AggregatedRecord
from shardline.aggregation import MAGIC, AggregateBuilder, DeaggregationPolicy
from shardline.records import ConsumedRecord

ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/devices"


class Sink:
    def __init__(self) -> None:
        self.written: list[ConsumedRecord] = []

    async def write(self, batch: Sequence[ConsumedRecord]) -> None:
        self.written.extend(batch)

    async def close(self) -> None:
        return None


class DeadLetter:
    def __init__(self) -> None:
        self.entries: list[DeadLetterEntry] = []

    async def put(self, entries: Sequence[DeadLetterEntry]) -> None:
        self.entries.extend(entries)

    async def close(self) -> None:
        return None


def _event(*records: tuple[str, bytes]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "kinesis": {
                    "partitionKey": "device",
                    "sequenceNumber": sequence,
                    "data": base64.b64encode(data).decode("ascii"),
                    "approximateArrivalTimestamp": 1545084650.987,
                },
                "eventSource": "aws:kinesis",
                "eventID": f"shardId-000000000000:{sequence}",
                "eventSourceARN": ARN,
            }
            for sequence, data in records
        ]
    }


def _amplifier(key_chars: int, records: int) -> bytes:
    """One long partition key shared by many empty records: the amplification input."""
    message = AggregatedRecord()
    message.partition_key_table.append("k" * key_chars)
    for _ in range(records):
        message.records.add(partition_key_index=0, data=b"")
    body = message.SerializeToString()
    return MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()


def test_an_amplifying_aggregate_goes_to_the_dead_letter_whole_with_the_reason() -> None:
    sink, dead = Sink(), DeadLetter()
    handler = make_handler(sink, dead_letter=dead)
    blob = _amplifier(64 * 1024, 1000)  # 64 KiB in, 64 MiB of keys out if expanded
    good = AggregateBuilder()
    good.try_add("device", b"reading")
    result = handler(_event(("1", blob), ("2", good.encode())), None)
    assert result == {"batchItemFailures": []}
    assert [r.data for r in sink.written] == [b"reading"]
    [entry] = dead.entries
    assert entry.record.data == blob  # whole, not expanded
    assert entry.error_type == "AggregateRefusedError"
    assert "65536 characters" in entry.reason and "kkkk" not in entry.reason


def test_a_refused_aggregate_without_a_dead_letter_is_reported_to_lambda() -> None:
    sink = Sink()
    handler = make_handler(sink)
    result = handler(_event(("1", _amplifier(300, 2))), None)
    assert result == {"batchItemFailures": [{"itemIdentifier": "1"}]}
    assert sink.written == []


def test_never_deaggregate_mode_in_the_lambda_handler() -> None:
    sink = Sink()
    handler = make_handler(sink, deaggregation=DeaggregationPolicy(deaggregate=False))
    good = AggregateBuilder()
    good.try_add("a", b"1")
    good.try_add("b", b"2")
    assert handler(_event(("1", good.encode())), None) == {"batchItemFailures": []}
    assert [r.data for r in sink.written] == [good.encode()]


def test_records_the_kcl_daemon_de_aggregated_are_never_expanded_again() -> None:
    pytest.importorskip("amazon_kclpy", reason="install with deploy/scripts/install_kclpy.py")
    from consumers.adapters.kcl import ShardlineRecordProcessor

    sink = Sink()
    processor = ShardlineRecordProcessor(sink, stream_name="devices", exit_process=lambda code: None)
    processor.initialize(SimpleNamespace(shard_id="shardId-000000000000"))
    # a user record whose bytes happen to be (or were crafted as) a KPL aggregate
    inner = AggregateBuilder()
    inner.try_add("x", b"1", None, "victim-1")
    inner.try_add("y", b"2")
    daemon_record = SimpleNamespace(
        binary_data=inner.encode(),
        partition_key="device",
        sequence_number="500",
        sub_sequence_number=3,
        approximate_arrival_timestamp=None,
        timestamp_millis=1545084650987,
    )
    checkpointer = SimpleNamespace(checkpoint=lambda *args: None)
    processor.process_records(
        SimpleNamespace(records=[daemon_record], checkpointer=checkpointer, millis_behind_latest=0)
    )
    [written] = sink.written
    assert written.data == inner.encode()
    assert written.identity == "devices/shardId-000000000000/500/3"


def test_lambda_kafka_events_trust_an_event_id_only_with_a_valid_mac() -> None:
    from consumers.adapters.lambda_handler import parse_kafka_event
    from shardline.eventid import EVENT_ID_MAC_HEADER, EventIdKey
    from shardline.kafka_config import EVENT_ID_HEADER

    key = EventIdKey("an-event-id-key-of-at-least-32-characters")

    def message(offset: int, mac: str | None) -> dict[str, Any]:
        headers = [{EVENT_ID_HEADER: list(b"evt-1")}]
        if mac is not None:
            headers.append({EVENT_ID_MAC_HEADER: list(mac.encode())})
        return {
            "topic": "t",
            "partition": 0,
            "offset": offset,
            "value": base64.b64encode(b"v").decode(),
            "headers": headers,
        }

    event = {
        "eventSource": "aws:kafka",
        "records": {"t-0": [message(1, key.mac("evt-1", b"v")), message(2, "forged"), message(3, None)]},
    }
    policy = DeaggregationPolicy(event_id_key=key)
    keyed = [item.records[0].identity for item in parse_kafka_event(event, policy)]
    assert keyed == ["evt-1", "t/0/2", "t/0/3"]
    assert [item.records[0].identity for item in parse_kafka_event(event)] == ["t/0/1", "t/0/2", "t/0/3"]
