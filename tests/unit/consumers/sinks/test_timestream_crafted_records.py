"""A record's payload cannot fail the WriteRecords call of its neighbours: what Timestream (or
botocore before it) refuses for the whole call is that record's typed rejection, with a reason
that names the fault, never the text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consumers.sinks.base import Outcome
from consumers.sinks.mapping import FieldMapping
from consumers.sinks.timestream import TimestreamSink
from shardline.errors import ConfigurationError
from shardline.records import ConsumedRecord, KafkaPosition
from tests.unit.consumers.sinks.timestream_doubles import ValidatingTimestream

MAPPING = FieldMapping(dimensions=("device",), time_field="ts")


def _record(offset: int, data: dict[str, Any] | bytes) -> ConsumedRecord:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return ConsumedRecord(raw, "k", KafkaPosition("t", 0, offset))


def _reading(offset: int, **fields: Any) -> dict[str, Any]:
    return {"device": f"d{offset}", "ts": 1_714_521_600_000 + offset, **fields}


async def _write_between_neighbours(
    crafted: ConsumedRecord, mapping: FieldMapping = MAPPING
) -> tuple[list[Any], ValidatingTimestream]:
    client = ValidatingTimestream()
    sink = TimestreamSink("db", "table", client=client, mapping=mapping)
    batch = [_record(1, _reading(1, temp=1.5)), crafted, _record(3, _reading(3, temp=2.5))]
    return await sink.write(batch), client


def _assert_rejected_alone(results: list[Any], client: ValidatingTimestream, *texts: str) -> None:
    assert [r.outcome for r in results] == [Outcome.WRITTEN, Outcome.REJECTED, Outcome.WRITTEN]
    assert results[1].error_type == "ValidationError"
    for text in texts:
        assert text not in results[1].reason
    assert len(client.calls) == 1
    assert [r["Dimensions"][0]["Value"] for r in client.records] == ["d1", "d3"]


@pytest.mark.parametrize(
    ("raw", "fault"),
    [
        (b"NaN", "not a finite DOUBLE"),
        (b"Infinity", "not a finite DOUBLE"),
        (b"-Infinity", "not a finite DOUBLE"),
        (b"1e400", "not a finite DOUBLE"),
        (b"9223372036854775808", "outside BIGINT"),
        (b"-9223372036854775809", "outside BIGINT"),
        (b'""', "empty string"),
        (b'"' + b"x" * 2049 + b'"', "over 2048 bytes"),
        (('"' + "\u00e9" * 1025 + '"').encode(), "over 2048 bytes"),
        (b'"\\ud800"', "lone surrogate"),
    ],
)
async def test_a_measure_value_timestream_refuses_is_rejected_alone(raw: bytes, fault: str) -> None:
    data = b'{"device": "d2", "ts": 1714521600002, "temp": ' + raw + b"}"
    results, client = await _write_between_neighbours(_record(2, data))
    _assert_rejected_alone(results, client, "xxx", "\u00e9")
    assert fault in results[1].reason


@pytest.mark.parametrize(
    ("value", "spelled", "kind"),
    [
        (2**63 - 1, "9223372036854775807", "BIGINT"),
        (-(2**63), "-9223372036854775808", "BIGINT"),
        (1.7976931348623157e308, "1.7976931348623157e+308", "DOUBLE"),
        ("x" * 2048, "x" * 2048, "VARCHAR"),
    ],
)
async def test_measure_values_at_their_limits_are_written(value: Any, spelled: str, kind: str) -> None:
    client = ValidatingTimestream()
    sink = TimestreamSink("db", "table", client=client, mapping=MAPPING)
    results = await sink.write([_record(1, _reading(1, temp=value))])
    assert [r.outcome for r in results] == [Outcome.WRITTEN]
    assert client.records[0]["MeasureValues"] == [{"Name": "temp", "Value": spelled, "Type": kind}]


async def test_a_time_past_int64_nanoseconds_is_rejected_alone() -> None:
    # 10**300 ms spelled out is longer than the 256 characters Time may have
    results, client = await _write_between_neighbours(_record(2, _reading(2, temp=1.0) | {"ts": 10**300}))
    _assert_rejected_alone(results, client, "1000000")
    assert "outside int64" in results[1].reason


async def test_a_single_measure_record_refuses_alone_too() -> None:
    mapping = FieldMapping(dimensions=("device",), time_field="ts", multi_measure=False)
    crafted = _record(2, _reading(2, temp=1.0, label=""))
    results, client = await _write_between_neighbours(crafted, mapping)
    _assert_rejected_alone(results, client)


async def test_a_single_measure_record_of_more_measures_than_one_call_takes_is_rejected_alone() -> None:
    # each measure is a Timestream record of its own, and botocore refuses a call of more than
    # 100: the record got a call of its own, which failed as a whole, and held its neighbours
    mapping = FieldMapping(dimensions=("device",), time_field="ts", multi_measure=False)
    crafted = _record(2, _reading(2, **{f"m{i}": i for i in range(101)}))
    results, client = await _write_between_neighbours(crafted, mapping)
    _assert_rejected_alone(results, client)
    assert "101 measures" in results[1].reason


async def test_a_single_measure_record_of_as_many_measures_as_one_call_takes_is_written() -> None:
    client = ValidatingTimestream()
    mapping = FieldMapping(dimensions=("device",), time_field="ts", multi_measure=False)
    sink = TimestreamSink("db", "table", client=client, mapping=mapping)
    results = await sink.write([_record(1, _reading(1, **{f"m{i}": i for i in range(100)}))])
    assert [r.outcome for r in results] == [Outcome.WRITTEN]
    assert len(client.records) == 100


@pytest.mark.parametrize(
    "name", ["", "time", "measure_name", "measure_value", "measure_value::double", "ts_x", "a:b", "n" * 257]
)
async def test_a_measure_name_timestream_refuses_is_rejected_alone_without_quoting_it(name: str) -> None:
    # the names of a MULTI record's values become the table's columns
    results, client = await _write_between_neighbours(_record(2, _reading(2, **{name: 1.0})))
    _assert_rejected_alone(results, client, "nnn")
    assert "measure name" in results[1].reason
    if name:
        assert name not in results[1].reason.split("(")[0]


async def test_a_measure_name_with_a_lone_surrogate_is_rejected_alone() -> None:
    data = b'{"device": "d2", "ts": 1714521600002, "\\ud800": 1}'
    results, client = await _write_between_neighbours(_record(2, data))
    _assert_rejected_alone(results, client)


async def test_single_measure_records_take_names_a_multi_measure_column_could_not() -> None:
    client = ValidatingTimestream()
    mapping = FieldMapping(dimensions=("device",), time_field="ts", multi_measure=False)
    sink = TimestreamSink("db", "table", client=client, mapping=mapping)
    results = await sink.write([_record(1, _reading(1, ts_count=3))])
    assert [r.outcome for r in results] == [Outcome.WRITTEN]
    assert client.records[0]["MeasureName"] == "ts_count"


@pytest.mark.parametrize(
    ("device", "fault"),
    [
        ("", "dimension 'device' is empty"),
        ("x" * 2048, "over 2048 bytes together"),
        ("\ud800", "lone surrogate"),
    ],
)
async def test_a_dimension_value_timestream_refuses_is_rejected_alone(device: str, fault: str) -> None:
    payload = json.dumps({"device": device, "ts": 1_714_521_600_002, "temp": 1.0}).encode()
    results, client = await _write_between_neighbours(_record(2, payload))
    _assert_rejected_alone(results, client, "xxx")
    assert fault in results[1].reason


async def test_dimensions_up_to_their_size_together_are_written() -> None:
    client = ValidatingTimestream()
    sink = TimestreamSink("db", "table", client=client, mapping=MAPPING)
    results = await sink.write([_record(1, _reading(1, temp=1.0) | {"device": "x" * (2048 - len("device"))})])
    assert [r.outcome for r in results] == [Outcome.WRITTEN]


@pytest.mark.parametrize(
    "mapping",
    [
        FieldMapping(dimensions=("time",)),
        FieldMapping(dimensions=("ts_site",)),
        FieldMapping(dimensions=("site:a",)),
        FieldMapping(dimensions=("d" * 61,)),
        FieldMapping(dimensions=tuple(f"d{i}" for i in range(129))),
        FieldMapping(measures=("measure_value",)),
        FieldMapping(measure_name="m" * 257),
    ],
)
def test_names_the_mapping_gives_timestream_are_checked_when_the_sink_is_built(mapping: FieldMapping) -> None:
    with pytest.raises(ConfigurationError):
        TimestreamSink("db", "table", client=ValidatingTimestream(), mapping=mapping)
