"""PutRecords bodies the producer encodes itself: the same JSON as botocore's serializer, and
what the client signs and sends; responses it parses itself: the same result as botocore's."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore import xform_name
from botocore.config import Config
from botocore.parsers import ResponseParserFactory
from botocore.serialize import create_serializer
from hypothesis import given
from hypothesis import strategies as st

from producers import put_records_body
from producers.put_records_body import encode_put_records, parse_put_records
from shardline.clients import aiobotocore_client
from tests.unit.shardline.test_response_bodies import parse_through

_OPERATION = botocore.session.get_session().get_service_model("kinesis").operation_model("PutRecords")
_BOTOCORE = create_serializer("json", include_validation=False)


def botocore_body(params: dict[str, Any]) -> bytes:
    body: bytes = _BOTOCORE.serialize_to_request(params, _OPERATION)["body"]
    return body


# Partition keys as users write them: any Unicode (quotes, backslashes, control characters,
# characters outside the BMP, which JSON writes as surrogate pairs).
keys = st.text(min_size=1, max_size=256)
hash_keys = st.integers(min_value=0, max_value=2**128 - 1).map(str)
entries = st.one_of(
    st.fixed_dictionaries({"Data": st.binary(max_size=300), "PartitionKey": keys}),
    st.fixed_dictionaries(
        {"Data": st.binary(max_size=300), "PartitionKey": keys, "ExplicitHashKey": hash_keys}
    ),
)
streams = st.one_of(
    st.fixed_dictionaries({"StreamName": st.text(min_size=1, max_size=128)}),
    st.fixed_dictionaries({"StreamARN": st.text(min_size=1, max_size=200)}),
)


@given(stream=streams, records=st.lists(entries, max_size=20))
def test_the_body_is_botocores_json(stream: dict[str, str], records: list[dict[str, Any]]) -> None:
    params = {"Records": records, **stream}
    ours = encode_put_records(params)
    assert ours is not None
    assert json.loads(ours) == json.loads(botocore_body(params))
    assert ours.isascii()  # strings escaped as botocore escapes them (ensure_ascii)


def test_large_aggregates_keep_every_byte() -> None:
    data = bytes(range(256)) * 200  # 51,200 bytes: every byte value, a 50 KiB aggregate's size
    params = {"StreamName": "s", "Records": [{"Data": data, "PartitionKey": "k"}] * 5}
    assert json.loads(encode_put_records(params) or b"") == json.loads(botocore_body(params))


@pytest.mark.parametrize(
    "params",
    [
        {"StreamName": "s", "Records": [{"Data": "text, not bytes", "PartitionKey": "k"}]},
        {"StreamName": "s", "Records": [{"Data": bytearray(b"x"), "PartitionKey": "k"}]},
        {"StreamName": "s", "Records": [{"Data": b"x", "PartitionKey": "k", "Other": 1}]},
        {"StreamName": "s", "Records": [{"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": 5}]},
        {"StreamName": "s", "Records": [{"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": None}]},
        {"StreamName": "s", "Records": [{"Data": b"x"}]},
        {"StreamName": "s", "Records": ({"Data": b"x", "PartitionKey": "k"},)},
        {"StreamName": "s", "StreamARN": 5, "Records": []},
        {"StreamName": "s", "Unknown": "x", "Records": []},
    ],
    ids=[
        "str-data",
        "bytearray",
        "unknown-entry-member",
        "int-hash-key",
        "none-hash-key",
        "no-key",
        "tuple-records",
        "non-str-arn",
        "unknown-member",
    ],
)
def test_what_it_does_not_know_is_left_to_botocore(params: dict[str, Any]) -> None:
    assert encode_put_records(params) is None


class _Sent(Exception):
    """Stops a call once the request is built: carries what would be signed and sent."""

    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        super().__init__("request built")
        self.body = body
        self.headers = headers


def _stop(request: Any, **_: Any) -> None:
    raise _Sent(request.body, dict(request.headers))


def _unvalidated_client() -> Any:
    """A client with the producer's own client's setting (no botocore parameter validation)."""
    return aiobotocore_client(
        "kinesis", endpoint_url="http://127.0.0.1:9", config=Config(parameter_validation=False)
    )


async def _request_of(client: Any, operation: str, **params: Any) -> _Sent:
    """What ``client`` would sign and send for ``operation(**params)``."""
    client.meta.events.register(f"before-sign.kinesis.{operation}", _stop, unique_id=f"stop-{operation}")
    with pytest.raises(_Sent) as sent:
        await getattr(client, xform_name(operation))(**params)
    return sent.value


async def test_an_installed_client_signs_the_encoded_body() -> None:
    params = {
        "StreamName": "s",
        "Records": [
            {"Data": b"\x00\xffdata", "PartitionKey": 'q"ü\\'},
            {"Data": b"more", "PartitionKey": "k", "ExplicitHashKey": "42"},
        ],
    }
    async with _unvalidated_client() as client:
        plain = await _request_of(client, "PutRecords", **params)
        put_records_body.install(client)
        put_records_body.install(client)  # idempotent
        encoded = await _request_of(client, "PutRecords", **params)
        fallback = await _request_of(
            client, "PutRecords", StreamName="s", Records=[{"Data": "text", "PartitionKey": "k"}]
        )
    assert plain.body == botocore_body(params)
    # what the signer sees (and so what is signed and sent) is the encoded body
    assert encoded.body == encode_put_records(params)
    assert json.loads(encoded.body) == json.loads(plain.body)
    for header in ("Content-Type", "X-Amz-Target"):
        assert encoded.headers[header] == plain.headers[header]
    assert json.loads(fallback.body)["Records"] == [{"Data": "dGV4dA==", "PartitionKey": "k"}]


async def test_other_operations_are_untouched() -> None:
    async with _unvalidated_client() as client:
        put_records_body.install(client)
        sent = await _request_of(client, "PutRecord", StreamName="s", Data=b"x", PartitionKey="k")
    assert json.loads(sent.body) == {"StreamName": "s", "Data": "eA==", "PartitionKey": "k"}


# --- PutRecords responses parsed by the producer's own parser ----------------------------------


def botocore_parse(body: bytes) -> dict[str, Any]:
    """What botocore's parser makes of a 200 PutRecords body (the oracle)."""
    parsed: dict[str, Any] = (
        ResponseParserFactory()
        .create_parser("json")
        .parse({"status_code": 200, "headers": {}, "body": body}, _OPERATION.output_shape)
    )
    parsed.pop("ResponseMetadata")
    return parsed


results = st.one_of(
    st.fixed_dictionaries(
        {
            "SequenceNumber": st.integers(min_value=0, max_value=10**56).map(str),
            "ShardId": st.text(max_size=30),
        }
    ),
    st.fixed_dictionaries(
        {
            "ErrorCode": st.sampled_from(["ProvisionedThroughputExceededException", "InternalFailure"]),
            "ErrorMessage": st.text(max_size=200),
        }
    ),
)


@given(
    records=st.lists(results, max_size=30),
    failed=st.integers(min_value=0, max_value=500),
    encryption=st.sampled_from([None, "NONE", "KMS"]),
)
def test_put_records_responses_parse_as_botocore_parses_them(
    records: list[dict[str, str]], failed: int, encryption: str | None
) -> None:
    response: dict[str, Any] = {"FailedRecordCount": failed, "Records": records}
    if encryption is not None:
        response["EncryptionType"] = encryption
    body = json.dumps(response).encode()
    assert parse_put_records(body) == botocore_parse(body)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"FailedRecordCount": 0, "Records": [], "Unknown": 1}',
        b'{"Records": []}',
        b'{"FailedRecordCount": "0", "Records": []}',
        b'{"FailedRecordCount": true, "Records": []}',
        b'{"FailedRecordCount": 0, "Records": null}',
        b'{"FailedRecordCount": 0, "Records": [[]]}',
        b'{"FailedRecordCount": 0, "Records": [{"SequenceNumber": 1, "ShardId": "s"}]}',
        b'{"FailedRecordCount": 0, "Records": [{"SequenceNumber": "1", "ShardId": 5}]}',
        b'{"FailedRecordCount": 0, "Records": [{"SequenceNumber": "1", "ShardId": "s", "Extra": "x"}]}',
    ],
    ids=lambda body: body.decode()[:70],
)
def test_put_records_responses_it_does_not_know_are_left_to_botocore(body: bytes) -> None:
    assert parse_put_records(body) is None


def test_null_members_are_left_out_as_botocore_leaves_them_out() -> None:
    # kinesis-mock writes the members an entry lacks as nulls
    body = (
        b'{"EncryptionType":null,"FailedRecordCount":1,"Records":['
        b'{"ErrorCode":null,"ErrorMessage":null,"SequenceNumber":"1","ShardId":"shardId-000000000001"},'
        b'{"ErrorCode":"InternalFailure","ErrorMessage":"m","SequenceNumber":null,"ShardId":null}]}'
    )
    parsed = parse_put_records(body)
    assert parsed is not None and parsed == botocore_parse(body)
    assert parsed["Records"][0] == {"SequenceNumber": "1", "ShardId": "shardId-000000000001"}


async def test_an_installed_client_parses_put_records_responses_itself() -> None:
    body = b'{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1","ShardId":"shardId-000000000000"}]}'
    async with _unvalidated_client() as client:
        put_records_body.install(client)
        customized, left = await parse_through(client, _OPERATION, body)
    assert customized == botocore_parse(body)
    assert left == b""
