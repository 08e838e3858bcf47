"""The fields of a Kafka event record read as untrusted input: each must be what Lambda sends
(a JSON integer, a Kafka topic name, a list of byte values) or the event is refused before
anything is written.  Before, ``int()`` and ``str()`` coerced whatever came: an offset of 15.7
was acknowledged as offset 15, a header value "123" became three bytes, a topic that was an
object was echoed into ``batchItemFailures``, and a refusal carried the offending text in its
cause."""

from __future__ import annotations

import copy
import json
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from consumers.adapters.lambda_handler import make_handler, parse_event
from shardline.errors import ValidationError
from shardline.records import ConsumedRecord

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "lambda"
SAMPLE: dict[str, Any] = json.loads((FIXTURES / "powertools-kafkaEventMsk.json").read_text())
SECRET = "payload-text-0123456789"


class _Sink:
    def __init__(self) -> None:
        self.written: list[ConsumedRecord] = []

    async def write(self, batch: list[ConsumedRecord]) -> None:
        self.written.extend(batch)

    async def close(self) -> None:
        return None


def _edited(edit: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    event = copy.deepcopy(SAMPLE)
    edit(event["records"]["mytopic-0"][0])
    return event


def _regrouped(record: dict[str, Any], key: str) -> dict[str, Any]:
    """The sample with its one record under ``key`` (so the map agrees with the record)."""
    event = copy.deepcopy(SAMPLE)
    event["records"] = {key: [record]}
    return event


_MALFORMED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "offset a float": lambda r: r.update(offset=15.7),
    "offset a decimal str": lambda r: r.update(offset="15"),
    "offset text": lambda r: r.update(offset=SECRET),
    "offset a bool": lambda r: r.update(offset=True),
    "offset past int64": lambda r: r.update(offset=2**63),
    "partition a float": lambda r: r.update(partition=0.9),
    "partition a str": lambda r: r.update(partition="0"),
    "partition a bool": lambda r: r.update(partition=False),
    "timestamp a str": lambda r: r.update(timestamp="1545084650987"),
    "timestamp a bool": lambda r: r.update(timestamp=True),
    "timestamp a float": lambda r: r.update(timestamp=1545084650987.5),
    "header value a str": lambda r: r.update(headers=[{"h": "123"}]),
    "header value an object": lambda r: r.update(headers=[{"h": {"1": 2}}]),
    "header value text": lambda r: r.update(headers=[{"h": SECRET}]),
    "header byte a float": lambda r: r.update(headers=[{"h": [1.9]}]),
    "header byte a bool": lambda r: r.update(headers=[{"h": [True]}]),
    "header byte a str": lambda r: r.update(headers=[{"h": ["65"]}]),
    "header byte text": lambda r: r.update(headers=[{"h": [SECRET]}]),
    "headers an object": lambda r: r.update(headers={"h": [1]}),
    "header name not a str": lambda r: r.update(headers=[{5: [1]}]),
}


@pytest.mark.parametrize("edit", list(_MALFORMED.values()), ids=list(_MALFORMED))
def test_a_field_lambda_never_sends_is_refused_before_writing(edit: Callable[[dict[str, Any]], Any]) -> None:
    sink = _Sink()
    handler = make_handler(sink)
    try:
        with pytest.raises(ValidationError) as raised:
            handler(_edited(edit), None)
    finally:
        handler.close()
    assert sink.written == []
    # the refusal and its whole chain, as a log would show them, name no field's content
    shown = "".join(traceback.format_exception(raised.value))
    assert SECRET not in shown
    assert "123" not in shown


@pytest.mark.parametrize(
    ("topic", "key"),
    [
        (5, "5-0"),
        ({"a": 1}, "{'a': 1}-0"),
        ("my topic", "my topic-0"),
        ("a" * 250, "a" * 250 + "-0"),
        ("..", "..-0"),
        ("", "-0"),
    ],
)
def test_a_topic_kafka_refuses_is_refused_not_echoed_as_an_identifier(topic: Any, key: str) -> None:
    record = copy.deepcopy(SAMPLE["records"]["mytopic-0"][0])
    record["topic"] = topic
    with pytest.raises(ValidationError) as raised:
        parse_event(_regrouped(record, key))
    if isinstance(topic, str) and topic:
        assert topic not in str(raised.value)


@pytest.mark.parametrize(
    ("topic", "partition", "key"),
    [("other", 0, "mytopic-0"), ("mytopic", 3, "mytopic-0"), ("mytopic", 0, "mytopic-00")],
)
def test_a_record_under_another_topic_partition_key_is_refused(topic: str, partition: int, key: str) -> None:
    """Lambda groups records by ``<topic>-<partition>`` and matches ``itemIdentifier`` by it:
    a record filed under another key is not an event Lambda sent, and its identifier would
    name a topic-partition the batch does not hold."""
    record = copy.deepcopy(SAMPLE["records"]["mytopic-0"][0])
    record.update(topic=topic, partition=partition)
    with pytest.raises(ValidationError):
        parse_event(_regrouped(record, key))


def test_partition_and_offset_at_kafkas_bounds_are_taken() -> None:
    record = copy.deepcopy(SAMPLE["records"]["mytopic-0"][0])
    record.update(topic="my.topic_1-x", partition=2**31 - 1, offset=2**63 - 1)
    [item] = parse_event(_regrouped(record, f"my.topic_1-x-{2**31 - 1}"))
    assert item.identifier == {"topic-partition": f"my.topic_1-x-{2**31 - 1}", "offset": 2**63 - 1}
    record["partition"] = 2**31
    with pytest.raises(ValidationError):
        parse_event(_regrouped(record, f"my.topic_1-x-{2**31}"))


def test_a_record_without_a_timestamp_has_no_arrival_time_as_kafka_source_reads_it() -> None:
    """``NO_TIMESTAMP_TYPE`` comes with timestamp -1: read as a time it was 1969-12-31."""
    event = _edited(lambda r: r.update(timestamp=-1, timestampType="NO_TIMESTAMP_TYPE"))
    [item] = parse_event(event)
    assert item.records[0].arrival_time is None
    [stamped] = parse_event(SAMPLE)
    assert stamped.records[0].arrival_time is not None


def test_a_null_header_list_and_a_null_timestamp_are_still_taken() -> None:
    [item] = parse_event(_edited(lambda r: r.update(headers=None, timestamp=None, key=None, value=None)))
    assert item.records[0].headers is None
    assert item.records[0].arrival_time is None
    assert item.records[0].data == b""
