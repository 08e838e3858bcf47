"""A Kinesis peer client that never finishes is stopped and reported, not waited on."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterator

import pytest

from benchmarks.peers import kinesis


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An endpoint that takes connections (the kernel completes them) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.timeout(60)  # botocore alone would wait minutes on the silent endpoint
def test_a_client_with_no_result_within_the_timeout_is_its_rows_error(
    silent_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    args = argparse.Namespace(
        endpoint=silent_endpoint, records=10, record_size=100, keys=10, shards=1, client_timeout=3.0
    )
    row = kinesis._run_in_process("boto3", args)
    assert row == {"client": "boto3", "error": "no result within 3 s; process stopped"}
