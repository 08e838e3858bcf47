"""How `shardline tail` prints records: JSON lines or readable lines, payloads as text or base64."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from consumers.tail.output import as_json, as_text, payload
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition

ARRIVAL = datetime(2026, 12, 1, 8, 0, 0, 250000, tzinfo=UTC)


def _kinesis(data: bytes, sub: int = 0) -> ConsumedRecord:
    return ConsumedRecord(data, "dev-1", KinesisPosition("s", "shardId-000000000001", "4960", sub), ARRIVAL)


def test_json_line_has_every_field_and_text_payload() -> None:
    row = json.loads(as_json(_kinesis(b'{"t": 21.5}', sub=3)))
    assert row == {
        "key": "dev-1",
        "shard": "shardId-000000000001",
        "sequence": "4960",
        "sub_sequence": 3,
        "arrival": "2026-12-01T08:00:00.250+00:00",
        "payload": '{"t": 21.5}',
        "encoding": "utf-8",
    }


def test_binary_payloads_are_base64_and_modes_are_honoured() -> None:
    blob = b"\xff\x00\x01"
    row = json.loads(as_json(_kinesis(blob)))
    assert row["encoding"] == "base64" and base64.b64decode(row["payload"]) == blob
    assert payload(b"abc", "base64") == ("YWJj", "base64")
    assert payload(blob, "utf-8") == ("\ufffd\x00\x01", "utf-8")


def test_kafka_positions_and_the_readable_form() -> None:
    record = ConsumedRecord(b"line\nbreak", "k", KafkaPosition("t", 2, 41), ARRIVAL)
    row = json.loads(as_json(record))
    assert (row["topic"], row["partition"], row["offset"]) == ("t", 2, 41) and "shard" not in row
    assert as_text(record) == "2026-12-01T08:00:00.250+00:00  t/2@41  key=k  line\\nbreak"
    assert as_text(_kinesis(b"\xff", sub=2)).endswith("shardId-000000000001 4960:2  key=dev-1  base64:/w==")
