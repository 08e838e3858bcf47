"""PutRecords bodies the producer encodes itself: the same JSON as botocore's serializer, and
what the client signs and sends."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.serialize import create_serializer
from hypothesis import given
from hypothesis import strategies as st

from producers import put_records_body
from producers.put_records_body import encode_put_records
from shardline.clients import aiobotocore_client

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


async def _request_of(client: Any, **params: Any) -> _Sent:
    def stop(request: Any, **_: Any) -> None:
        raise _Sent(request.body, dict(request.headers))

    client.meta.events.register("before-sign.kinesis.PutRecords", stop)
    with pytest.raises(_Sent) as sent:
        await client.put_records(**params)
    return sent.value


async def test_an_installed_client_signs_the_encoded_body() -> None:
    params = {
        "StreamName": "s",
        "Records": [
            {"Data": b"\x00\xffdata", "PartitionKey": 'q"ü\\'},
            {"Data": b"more", "PartitionKey": "k", "ExplicitHashKey": "42"},
        ],
    }
    unvalidated = Config(parameter_validation=False)  # the producer's own client's setting
    async with aiobotocore_client("kinesis", endpoint_url="http://127.0.0.1:9", config=unvalidated) as client:
        plain = await _request_of(client, **params)
        put_records_body.install(client)
        put_records_body.install(client)  # idempotent
        encoded = await _request_of(client, **params)
        fallback = await _request_of(client, StreamName="s", Records=[{"Data": "text", "PartitionKey": "k"}])
    assert plain.body == botocore_body(params)
    # what the signer sees (and so what is signed and sent) is the encoded body
    assert encoded.body == encode_put_records(params)
    assert json.loads(encoded.body) == json.loads(plain.body)
    for header in ("Content-Type", "X-Amz-Target"):
        assert encoded.headers[header] == plain.headers[header]
    assert json.loads(fallback.body)["Records"] == [{"Data": "dGV4dA==", "PartitionKey": "k"}]


async def test_other_operations_are_untouched() -> None:
    async with get_session().create_client(
        "kinesis",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        config=Config(parameter_validation=False),
    ) as client:
        put_records_body.install(client)
        seen: list[bytes] = []

        def stop(request: Any, **_: Any) -> None:
            seen.append(request.body)
            raise _Sent(request.body, {})

        client.meta.events.register("before-sign.kinesis.PutRecord", stop)
        with pytest.raises(_Sent):
            await client.put_record(StreamName="s", Data=b"x", PartitionKey="k")
    assert json.loads(seen[0]) == {"StreamName": "s", "Data": "eA==", "PartitionKey": "k"}
