"""DynamoDB's 400 KB item limit is judged on the item's UTF-8 size, not its JSON spelling."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consumers.sinks.base import Outcome
from consumers.sinks.dynamodb import DynamoDBSink
from shardline.limits import DYNAMODB_ITEM_MAX_BYTES
from shardline.records import ConsumedRecord, KinesisPosition
from tests.unit.consumers.sinks.dynamodb_doubles import AcceptingDynamoDB


def _record(payload: dict[str, Any]) -> ConsumedRecord:
    data = json.dumps(payload, ensure_ascii=False).encode()
    return ConsumedRecord(data, "k", KinesisPosition("s", "shardId-000000000000", "1"))


@pytest.mark.parametrize(
    "text",
    [
        "\u6f22" * 100_000,  # 300,000 UTF-8 bytes; 600,000 as JSON \\u escapes
        "\U0001f600" * 75_000,  # 300,000 UTF-8 bytes; 900,000 as JSON surrogate pairs
        '"\\' * 150_000,  # 300,000 bytes; twice that escaped
        "\x01" * 300_000,  # 300,000 bytes; six times that escaped
    ],
)
async def test_an_item_under_the_limit_is_written_whatever_its_characters(text: str) -> None:
    client = AcceptingDynamoDB()
    sink = DynamoDBSink("table", client=client)
    (result,) = await sink.write([_record({"text": text})])
    assert result.outcome is Outcome.WRITTEN
    assert client.items[0]["text"] == {"S": text}


async def test_an_item_over_the_limit_is_still_rejected_before_sending() -> None:
    client = AcceptingDynamoDB()
    sink = DynamoDBSink("table", client=client)
    text = "\u00e9" * (DYNAMODB_ITEM_MAX_BYTES // 2 + 1)  # two UTF-8 bytes each
    (result,) = await sink.write([_record({"text": text})])
    assert result.outcome is Outcome.REJECTED
    assert result.error_type == "RecordTooLargeError"
    assert client.items == []


def test_the_estimate_never_falls_below_the_utf8_bytes_of_names_and_strings() -> None:
    sink = DynamoDBSink("table", client=object())
    payload = {"n\u00e4me": "v\u00e4lue", "nested": {"k\u00eby": ["\u6f22", 12.5, True, None]}, "count": -123}
    entry = sink.encode(_record(payload))
    text_bytes = sum(
        len(s.encode()) for s in ("n\u00e4me", "v\u00e4lue", "nested", "k\u00eby", "\u6f22", "count")
    )
    assert entry.size >= text_bytes + len("pk") + len(entry.item["pk"]["S"])
    assert entry.size < len(json.dumps(entry.item))
