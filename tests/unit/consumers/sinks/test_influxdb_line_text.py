"""Texts from a record become line protocol that InfluxDB reads back as written, or the record
is refused alone: no record can add a point, or move its own into another series or field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consumers.sinks.influxdb import to_line
from consumers.sinks.mapping import FieldMapping
from shardline.errors import ValidationError
from shardline.records import ConsumedRecord, KinesisPosition

MAPPING = FieldMapping(dimensions=("device", "site"), time_field="ts")


def line_of(payload: dict[str, Any]) -> bytes:
    record = ConsumedRecord(json.dumps(payload).encode(), "k", KinesisPosition("s", "shardId-0", "1"))
    return to_line(record, MAPPING)


@pytest.mark.parametrize(
    "payload",
    [
        # a trailing backslash escaped the comma after it: the tag took in the next tag
        {"device": "d\\", "site": "s", "v": 1, "ts": 1},
        # ... or the equals sign after a field key: two fields became one wrongly named field
        {"device": "d", "site": "s", "k\\": 1, "z": 2, "ts": 1},
        {"device": "d\\,x", "site": "s", "v": 1, "ts": 1},
        {"device": "d\\\\x", "site": "s", "v": 1, "ts": 1},
        {"device": "d", "site": "s", "time": 1, "ts": 1},
        {"device": "d", "site": "s", "note": "two\nlines", "ts": 1},
        {"device": "d", "site": "s", "note": "two\rlines", "ts": 1},
    ],
)
def test_text_the_line_protocol_cannot_carry_refuses_the_record(payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        line_of(payload)
    assert "\\" not in str(caught.value) and "lines" not in str(caught.value)


def test_a_backslash_influxdb_reads_as_itself_is_written_as_it_is() -> None:
    # doubled, InfluxDB 1.x stored both backslashes: the tag value was not the record's
    line = line_of({"device": "C:\\dev\\x", "site": "a b,c=d", "v": 1, "ts": 1})
    assert line == b"metrics,device=C:\\dev\\x,site=a\\ b\\,c\\=d v=1i 1000000\n"


def test_a_string_field_escapes_only_quotes_and_backslashes() -> None:
    line = line_of({"device": "d", "site": "s", "note": 'say "hi"\\', "ts": 1})
    assert line == b'metrics,device=d,site=s note="say \\"hi\\"\\\\" 1000000\n'


@pytest.mark.parametrize(
    "payload",
    [
        # InfluxDB reads a backslash before a double quote in a field key as an escape: the
        # value was stored under the field 'a"b', another field than the record's
        {"device": "d", "site": "s", 'a\\"b': 1, "ts": 1},
        # it skips a tab or NUL that opens the fields: the value was stored under 'v',
        # replacing the record's own field 'v'
        {"device": "d", "site": "s", "\tv": 1, "v": 2, "ts": 1},
        {"device": "d", "site": "s", "\x00v": 1, "ts": 1},
    ],
)
def test_a_field_key_influxdb_would_read_as_another_refuses_the_record(payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        line_of(payload)
    assert "field key" in str(caught.value)
    assert '"' not in str(caught.value) and "\t" not in str(caught.value)


def test_a_double_quote_or_tab_inside_a_field_key_or_tag_value_is_written_as_it_is() -> None:
    # read back as written by InfluxDB 1.x: only a key's opening tab or NUL is skipped, and
    # only field keys read backslash-quote as an escape
    line = line_of({"device": 'a\\"b\t', "site": "s", 'x"y': 1, "z\t": 2, "ts": 1})
    assert line == b'metrics,device=a\\"b\t,site=s x"y=1i,z\t=2i 1000000\n'


@pytest.mark.parametrize("ts", [2**63 - 1, 2**63, -(2**63) + 1, 10**26])
def test_a_time_influxdb_cannot_store_refuses_the_record(ts: int) -> None:
    # InfluxDB stores -(2**63)+2 .. 2**63-2 nanoseconds and answered 400 for the whole call
    mapping = FieldMapping(dimensions=("device",), time_field="ts", time_unit="ns")
    record = ConsumedRecord(
        json.dumps({"device": "d", "v": 1, "ts": ts}).encode(), "k", KinesisPosition("s", "shardId-0", "1")
    )
    with pytest.raises(ValidationError) as caught:
        to_line(record, mapping)
    assert "time" in str(caught.value) and str(ts) not in str(caught.value)


@pytest.mark.parametrize("ts", [2**63 - 2, -(2**63) + 2])
def test_the_times_at_influxdbs_bounds_are_written(ts: int) -> None:
    mapping = FieldMapping(dimensions=("device",), time_field="ts", time_unit="ns")
    record = ConsumedRecord(
        json.dumps({"device": "d", "v": 1, "ts": ts}).encode(), "k", KinesisPosition("s", "shardId-0", "1")
    )
    assert to_line(record, mapping).split()[-1] == str(ts).encode()
