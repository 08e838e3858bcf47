"""InfluxDB credentials never cross the network in the clear and never show in a repr."""

from __future__ import annotations

import pytest

from consumers.sinks.influxdb import InfluxDBSink
from consumers.sinks.uri import sink_from_uri
from shardline.errors import ConfigurationError


def test_a_token_over_plaintext_to_a_remote_host_is_refused_naming_the_uri(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INFLUX_TOKEN", "influx-secret-token")
    with pytest.raises(ConfigurationError, match=r"influx\.example\.com:8086") as raised:
        sink_from_uri("influxdb://influx.example.com:8086?org=o&bucket=b")
    assert "influx-secret-token" not in str(raised.value)
    assert "https" in str(raised.value)


@pytest.mark.parametrize(
    "uri",
    [
        "influxdb://127.0.0.1:8086?org=o&bucket=b",
        "influxdb://localhost:8086?org=o&bucket=b",
        "influxdb://[::1]:8086?org=o&bucket=b",
        "influxdb+https://influx.example.com:8086?org=o&bucket=b",
        "influxdbs://influx.example.com:8086?org=o&bucket=b",
    ],
)
def test_tokens_go_to_loopback_or_over_tls(monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    monkeypatch.setenv("INFLUX_TOKEN", "influx-secret-token")
    sink = sink_from_uri(uri)
    assert isinstance(sink, InfluxDBSink)
    assert "influx-secret-token" not in repr(sink)
    assert sink.url.startswith("https://") == ("https" in uri or "influxdbs" in uri)


def test_url_credentials_are_refused_in_plaintext_and_hidden_from_repr() -> None:
    with pytest.raises(ConfigurationError) as raised:
        InfluxDBSink("http://admin:pw-secret@influx.example.com:8086", database="iot")
    assert "pw-secret" not in str(raised.value) and "***@influx.example.com" in str(raised.value)
    sink = InfluxDBSink("https://admin:pw-secret@influx.example.com:8086", database="iot")
    assert "pw-secret" not in repr(sink) and "admin" not in repr(sink)


def test_a_malformed_uri_error_does_not_echo_credentials() -> None:
    with pytest.raises(ConfigurationError) as raised:
        sink_from_uri("influxdb://user:pw-secret@/iot")
    assert "pw-secret" not in str(raised.value)


def test_plaintext_without_credentials_to_a_remote_host_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        sink_from_uri("influxdb://influx.example.com:8086/iot")
    assert any("plaintext" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING"):
        sink_from_uri("influxdb://127.0.0.1:8086/iot")
    assert not any("plaintext" in r.getMessage() for r in caplog.records)
