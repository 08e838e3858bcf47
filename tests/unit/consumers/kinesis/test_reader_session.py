"""The source's own session: epoch timestamps straight to UTC, blobs through SIMD base64,
other forms through botocore."""

from __future__ import annotations

import base64
import binascii
import os
from datetime import UTC, datetime

import pytest
from botocore.utils import parse_timestamp

from consumers.kinesis.session import blob, reader_session, utc_timestamp


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
