"""The source's own session: epoch timestamps straight to UTC, blobs through SIMD base64,
GetRecords bodies through its own parser, other forms through botocore."""

from __future__ import annotations

import base64
import binascii
import json
import os
from datetime import UTC, datetime
from typing import Any

import botocore.session
import pytest
from botocore.parsers import EventStreamJSONParser, ResponseParserFactory
from botocore.utils import parse_timestamp
from hypothesis import given
from hypothesis import strategies as st

from consumers.kinesis.reader_bodies import blob, parse_get_records, parse_subscribe_event, utc_timestamp
from consumers.kinesis.session import reader_session
from shardline.clients import new_aiobotocore_session
from tests.unit.shardline.test_response_bodies import parse_through


def test_epoch_seconds_become_utc_datetimes() -> None:
    assert utc_timestamp(1595035749.7) == datetime.fromtimestamp(1595035749.7, UTC)
    assert utc_timestamp(1595035749).tzinfo is UTC
    assert utc_timestamp(1595035749.7) == parse_timestamp(1595035749.7)  # the same instant as botocore's


def test_other_forms_are_botocores() -> None:
    assert utc_timestamp("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_the_session_parses_with_it() -> None:
    factory = reader_session().get_component("response_parser_factory")
    parser = factory.create_parser("json")
    assert parser._timestamp_parser is utc_timestamp
    assert parser._blob_parser is blob


@pytest.mark.parametrize(
    "value",
    [
        base64.b64encode(os.urandom(51_200)).decode(),  # a 50 KiB aggregate
        base64.b64encode(b"x").decode(),
        "",
        "aGVs\nbG8=",  # not strict base64: botocore's lenient decoding applies
        "aGVs*bG8=",
    ],
    ids=["aggregate", "short", "empty", "newline", "stray-character"],
)
def test_blobs_decode_exactly_as_botocore_decodes_them(value: str) -> None:
    assert blob(value) == base64.b64decode(value)


def test_a_blob_botocore_refuses_is_refused_alike() -> None:
    with pytest.raises(binascii.Error):
        base64.b64decode("aGVsbG8")  # bad padding
    with pytest.raises(binascii.Error):
        blob("aGVsbG8")


# --- GetRecords bodies parsed by the session's own parser ---------------------------------------

_GET_RECORDS = botocore.session.get_session().get_service_model("kinesis").operation_model("GetRecords")


def botocore_parse(body: bytes) -> dict[str, Any]:
    """What this session's botocore parser makes of a 200 GetRecords body (the oracle)."""
    factory = ResponseParserFactory()
    factory.set_parser_defaults(timestamp_parser=utc_timestamp, blob_parser=blob)
    parsed: dict[str, Any] = factory.create_parser("json").parse(
        {"status_code": 200, "headers": {}, "body": body}, _GET_RECORDS.output_shape
    )
    parsed.pop("ResponseMetadata")
    return parsed


wire_records = st.fixed_dictionaries(
    {
        "SequenceNumber": st.integers(min_value=0, max_value=10**56).map(str),
        "ApproximateArrivalTimestamp": st.one_of(
            st.integers(min_value=0, max_value=4_000_000_000),
            st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False).map(lambda t: round(t, 3)),
        ),
        "Data": st.binary(max_size=300).map(lambda data: base64.b64encode(data).decode()),
        "PartitionKey": st.text(min_size=1, max_size=256),
    },
    optional={"EncryptionType": st.sampled_from(["NONE", "KMS"])},
)
wire_responses = st.fixed_dictionaries(
    {"Records": st.lists(wire_records, max_size=20)},
    optional={
        "NextShardIterator": st.text(min_size=1, max_size=512),
        "MillisBehindLatest": st.integers(min_value=0, max_value=7 * 24 * 3_600_000),
        "ChildShards": st.just([]),
    },
)
wire_events = st.fixed_dictionaries(
    {"Records": st.lists(wire_records, max_size=20)},
    optional={
        "ContinuationSequenceNumber": st.integers(min_value=0, max_value=10**56).map(str),
        "MillisBehindLatest": st.integers(min_value=0, max_value=7 * 24 * 3_600_000),
        "ChildShards": st.one_of(st.just([]), st.none()),
    },
)


@given(response=wire_responses)
def test_get_records_bodies_parse_as_botocore_parses_them(response: dict[str, Any]) -> None:
    body = json.dumps(response).encode()
    assert parse_get_records(body) == botocore_parse(body)


@pytest.mark.parametrize(
    "nulls",
    [
        {"ChildShards": None},
        {"NextShardIterator": None},
        {"MillisBehindLatest": None},
        {"record_EncryptionType": None},
    ],
    ids=["child-shards", "iterator", "millis-behind", "encryption-type"],
)
def test_null_members_are_left_out_as_botocore_leaves_them_out(nulls: dict[str, Any]) -> None:
    body = _body(**nulls)
    parsed = parse_get_records(body)
    assert parsed is not None and parsed == botocore_parse(body)


def test_exponent_times_and_escapes_parse_as_botocore_parses_them() -> None:
    # an arrival time in exponent form (as Java prints a double) and a JSON escape in the iterator
    body = (
        b'{"MillisBehindLatest":2100,"NextShardIterator":"AAAAAAAAAAHsW8zCWf9164uy8Epue6WS3w6wmj4a\\/'
        b'4USt+CNvMd6uXQ+HL5vAJMznqqC0DLKsIjuoiTi1BpT6nW0LN2M2D56zM5H8anHm30Gbri9ua+qaGgj+3XTyvbhp=",'
        b'"Records":[{"Data":"XzxkYXRhPl8w","PartitionKey":"partitionKey",'
        b'"ApproximateArrivalTimestamp":1.441215410867E9,"SequenceNumber":"21269319989652663814458848515492872193"}]}'
    )
    parsed = parse_get_records(body)
    assert parsed == botocore_parse(body)
    assert parsed is not None and parsed["Records"][0]["Data"] == b"_<data>_0"


def _body(**changes: Any) -> bytes:
    record: dict[str, Any] = {
        "SequenceNumber": "1",
        "ApproximateArrivalTimestamp": 1.5e9,
        "Data": "eA==",
        "PartitionKey": "k",
    }
    response: dict[str, Any] = {"Records": [record], "NextShardIterator": "it", "MillisBehindLatest": 0}
    for name, value in changes.items():
        target = record if name in record or name.startswith("record_") else response
        name = name.removeprefix("record_")
        if value is _DROP:
            del target[name]
        else:
            target[name] = value
    return json.dumps(response).encode()


_DROP = object()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"Records": []',
        _body(ChildShards=[{"ShardId": "s", "ParentShards": ["p"], "HashKeyRange": {}}]),
        _body(Unknown=1),
        _body(record_Unknown=1),
        _body(Data=_DROP),
        _body(Data=None),
        _body(Data=5),
        _body(Data="aGVsbG8"),  # bad padding: botocore's decoding refuses it
        _body(ApproximateArrivalTimestamp="2026-01-02T03:04:05Z"),
        _body(ApproximateArrivalTimestamp=1e300),
        _body(ApproximateArrivalTimestamp=True),
        _body(SequenceNumber=1),
        _body(PartitionKey=None),
        _body(record_EncryptionType=5),
        _body(MillisBehindLatest="0"),
        _body(Records=None),
        _body(Records=[[]]),
    ],
    ids=lambda body: body.decode()[:60],
)
def test_get_records_bodies_it_does_not_know_are_left_to_botocore(body: bytes) -> None:
    assert parse_get_records(body) is None


async def test_the_session_s_clients_parse_get_records_bodies_with_it() -> None:
    body = _body()
    async with reader_session().create_client(
        "kinesis", endpoint_url="http://127.0.0.1:9", region_name="us-east-1"
    ) as client:
        customized, left = await parse_through(client, _GET_RECORDS, body)
    assert customized == parse_get_records(body)
    assert left == b""


# --- SubscribeToShard events parsed by the session's own event parser ---------------------------

_SUBSCRIBE = botocore.session.get_session().get_service_model("kinesis").operation_model("SubscribeToShard")
_EVENT_STREAM = _SUBSCRIBE.output_shape.members["EventStream"] if _SUBSCRIBE.output_shape else None
_EVENT_HEADERS = {":message-type": "event", ":event-type": "SubscribeToShardEvent"}


def botocore_event(body: bytes) -> dict[str, Any]:
    """What botocore's event-stream parser, with this session's defaults, makes of an event."""
    parser = EventStreamJSONParser(timestamp_parser=utc_timestamp, blob_parser=blob)
    parsed: dict[str, Any] = parser.parse(
        {"status_code": 200, "headers": _EVENT_HEADERS, "body": body}, _EVENT_STREAM
    )
    return parsed


@given(event=wire_events)
def test_subscribe_events_parse_as_botocore_parses_them(event: dict[str, Any]) -> None:
    body = json.dumps(event).encode()
    parsed = parse_subscribe_event(body)
    assert parsed is not None
    assert {"SubscribeToShardEvent": parsed} == botocore_event(body)


@pytest.mark.parametrize(
    "event",
    [
        {"Records": [], "ChildShards": [{"ShardId": "c", "ParentShards": ["p"], "HashKeyRange": {}}]},
        {"Records": [], "ContinuationSequenceNumber": 5},
        {"Records": [], "NextShardIterator": "not an event member"},
        {"Records": [{"SequenceNumber": "1", "Data": "eA==", "PartitionKey": "k"}]},
    ],
    ids=["child-shards", "continuation-not-a-string", "unknown-member", "record-without-time"],
)
def test_subscribe_events_it_does_not_know_are_left_to_botocore(event: dict[str, Any]) -> None:
    assert parse_subscribe_event(json.dumps(event).encode()) is None


async def test_the_session_s_event_parser_tries_the_event_parse_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[bytes] = []

    def spy(body: bytes) -> dict[str, Any] | None:
        calls.append(body)
        return parse_subscribe_event(body)

    monkeypatch.setattr("consumers.kinesis.session.parse_subscribe_event", spy)
    parser = reader_session().get_component("response_parser_factory").create_parser("json")
    events = parser._event_stream_parser  # what a SubscribeToShard stream of this client parses with
    known = json.dumps({"Records": [], "MillisBehindLatest": 0}).encode()
    child = json.dumps({"Records": [], "ChildShards": [{"ShardId": "c", "ParentShards": ["p"]}]}).encode()
    response = {"status_code": 200, "headers": _EVENT_HEADERS}
    assert await events.parse({**response, "body": known}, _EVENT_STREAM) == botocore_event(known)
    assert await events.parse({**response, "body": child}, _EVENT_STREAM) == botocore_event(child)
    assert calls == [known, child]  # the second was left to botocore, and parsed alike


def test_the_reader_session_shares_the_data_loader_and_keeps_its_own_parsers() -> None:
    reader, plain = reader_session(), new_aiobotocore_session()
    assert reader.get_component("data_loader") is plain.get_component("data_loader")
    assert type(reader.get_component("response_parser_factory")) is not type(
        plain.get_component("response_parser_factory")
    )
