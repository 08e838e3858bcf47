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


def test_plaintext_is_allowed_to_loopback_and_to_hosts_named_on_purpose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shardline.endpoints import PLAINTEXT_HOSTS_ENV, plaintext_allowed

    monkeypatch.delenv(PLAINTEXT_HOSTS_ENV, raising=False)
    assert plaintext_allowed("127.0.0.1") and plaintext_allowed("::1") and plaintext_allowed("localhost")
    assert not plaintext_allowed("localstack") and not plaintext_allowed("") and not plaintext_allowed(None)
    monkeypatch.setenv(PLAINTEXT_HOSTS_ENV, " LocalStack ,influx.test.,[fd00::1],")
    assert (
        plaintext_allowed("localstack") and plaintext_allowed("influx.test") and plaintext_allowed("fd00::1")
    )
    assert not plaintext_allowed("localstack2") and not plaintext_allowed("test")


def test_redact_urls_in_hides_the_user_info_of_every_url_in_a_text() -> None:
    from shardline.endpoints import redact_urls_in

    text = "Invalid endpoint: https://u:pw-secret@bad host:443 and kafka://k:1/pw-secret@b:9092/t."
    assert redact_urls_in(text) == "Invalid endpoint: https://***@bad host:443 and kafka://***@b:9092/t."
    assert (
        redact_urls_in("mail a@b.example, see https://h:1/x?y=1") == "mail a@b.example, see https://h:1/x?y=1"
    )
