"""stream-bench's clients built outside the Kinesis run (merge's S3 client, the peer libraries'
endpoint) refuse plain http:// beyond the machine, as every client Shardline builds does."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import benchmarks.merge as merge
from benchmarks.cli import _peer_server, main
from shardline.errors import ConfigurationError

REMOTE = "http://10.20.30.40:9000"


@pytest.fixture(autouse=True)
def _nothing_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHARDLINE_ALLOW_PLAINTEXT_HOSTS", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def test_merge_refuses_an_s3_endpoint_in_plaintext_beyond_the_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", REMOTE)
    with pytest.raises(ConfigurationError, match="plaintext"):
        merge._s3()
    assert main(["merge", "s3://b/run/", "--out", str(tmp_path / "out")]) == 2
    assert "10.20.30.40:9000" in capsys.readouterr().err


def test_merge_still_reaches_a_loopback_endpoint_and_keeps_its_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")
    client = merge._s3()
    assert client.meta.endpoint_url == "http://127.0.0.1:9000"
    assert client.meta.config.retries["total_max_attempts"] == 3


def test_peers_refuse_a_kinesis_endpoint_in_plaintext_beyond_the_machine() -> None:
    args = argparse.Namespace(family="kinesis", endpoint=REMOTE, bootstrap=None)
    with pytest.raises(ConfigurationError, match="plaintext"), _peer_server(args):
        pytest.fail("the peers ran")
    args = argparse.Namespace(family="kinesis", endpoint="http://[::1]:4567", bootstrap=None)
    with _peer_server(args) as address:
        assert address == "http://[::1]:4567"
