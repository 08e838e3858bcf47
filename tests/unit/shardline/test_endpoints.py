"""Loopback detection, URL redaction and the plaintext warning shared by sinks and CLIs."""

from __future__ import annotations

import logging

import pytest

from shardline.endpoints import is_loopback_host, redact_url, warn_if_plaintext_remote


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.10", "::1", "[::1]", "a.localhost"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["", None, "10.0.0.1", "example.com", "localhost.example.com", "0.0.0.0"])
def test_hosts_that_are_not_loopback(host: str | None) -> None:
    assert not is_loopback_host(host)


def test_redact_url_hides_userinfo_only() -> None:
    assert redact_url("http://u:p@h:1/x?y=1") == "http://***@h:1/x?y=1"
    assert redact_url("https://h:1/x") == "https://h:1/x"


def test_plaintext_warning_names_remote_hosts_only(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.endpoints")
    with caplog.at_level("WARNING"):
        assert not warn_if_plaintext_remote(log, "kafka", "127.0.0.1:9092,localhost:9093")
        assert warn_if_plaintext_remote(log, "kafka", "127.0.0.1:9092,b-1.msk.example.com:9092")
    [record] = caplog.records
    assert record.hosts == "b-1.msk.example.com"  # type: ignore[attr-defined]
