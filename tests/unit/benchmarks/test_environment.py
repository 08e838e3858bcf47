"""Results say where they ran: a local emulator never reads like AWS."""

from __future__ import annotations

import pytest

from benchmarks.environment import describe_endpoint, environment


@pytest.mark.parametrize(
    ("endpoint", "region", "said"),
    [
        ("http://127.0.0.1:4567", "us-east-1", "http://127.0.0.1:4567 (local emulator)"),
        ("http://localhost:4566", None, "http://localhost:4566 (local emulator)"),
        ("https://kinesis.eu-west-1.amazonaws.com", "eu-west-1",
         "https://kinesis.eu-west-1.amazonaws.com (AWS region eu-west-1)"),
        (None, "eu-west-1", "AWS region eu-west-1"),
        ("http://kinesis.internal:80", "us-east-1", "http://kinesis.internal:80 (custom endpoint)"),
        ("127.0.0.1:9092,localhost:9093", None, "127.0.0.1:9092,localhost:9093 (local emulator)"),
        ("b-1.msk.eu-west-1.amazonaws.com:9098", None, "b-1.msk.eu-west-1.amazonaws.com:9098 (AWS)"),
    ],
)  # fmt: skip
def test_endpoints_in_words(endpoint: str | None, region: str | None, said: str) -> None:
    assert describe_endpoint(endpoint, region) == said


def test_environment_names_versions_and_machine() -> None:
    where = environment("Kafka / MSK", "127.0.0.1:9092", None)
    assert where["where"].endswith("(local emulator)")
    assert "shardline" in where["versions"] and "botocore" in where["versions"]
    assert where["machine"]["cores"] >= 1 and where["machine"]["python"].count(".") == 2


@pytest.mark.parametrize(
    ("endpoint", "shown"),
    [
        ("https://admin:pw-secret@kinesis.example.com:443", "https://***@kinesis.example.com:443"),
        ("admin:pw-secret@b-1.example.com:9096,b-2.example.com:9096",
         "***@b-1.example.com:9096,b-2.example.com:9096"),
    ],
)  # fmt: skip
def test_the_result_keeps_no_user_info_of_the_endpoint(endpoint: str, shown: str) -> None:
    import json

    where = environment("Kinesis", endpoint, "eu-west-1")
    assert "pw-secret" not in json.dumps(where)
    assert where["endpoint"] == shown and where["where"].startswith(shown + " (")
