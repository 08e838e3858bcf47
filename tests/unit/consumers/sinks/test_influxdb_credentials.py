"""InfluxDB credentials never cross the network in the clear and never show in a repr."""

from __future__ import annotations

import pytest

from consumers.sinks.base import Outcome
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


# --- URL-encoded user info ------------------------------------------------------------------------


@pytest.mark.parametrize("encoded", ["1234%2Fpw-secret", "pw%23secret", "pw%3Fsecret"])
def test_an_encoded_password_over_plaintext_is_still_refused(encoded: str) -> None:
    # The URI's authority was decoded before the URL was rebuilt: "1234%2Fpw-secret" became
    # host "admin", port 1234 and a path holding the password, which passed this check.
    with pytest.raises(ConfigurationError) as raised:
        sink_from_uri(f"influxdb://admin:{encoded}@influx.example.com:8086/iot")
    assert "secret" not in str(raised.value)


@pytest.mark.parametrize("encoded", ["1234%2Fpw-secret", "pw%23secret", "pw%3Fsecret", "pw%40secret"])
def test_an_encoded_password_stays_encoded_and_out_of_the_repr(encoded: str) -> None:
    sink = sink_from_uri(f"influxdb+https://admin:{encoded}@influx.example.com:8086/iot")
    assert isinstance(sink, InfluxDBSink)
    assert "secret" not in repr(sink) and "admin" not in repr(sink)
    url, _ = sink._endpoint()
    assert url == f"https://admin:{encoded}@influx.example.com:8086/write"


@pytest.mark.parametrize(
    "url",
    [
        "http://admin:1234/pw-secret@influx.example.com:8086",  # host "admin", port 1234
        "https://admin:pw#secret@influx.example.com:8086",  # port "pw"
        "https://admin:pw?secret@influx.example.com:8086",
        "https://influx.example.com:80a86",
    ],
)
def test_a_url_whose_password_cuts_its_authority_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ConfigurationError, match="percent-encode") as raised:
        InfluxDBSink(url, database="iot")
    assert "secret" not in str(raised.value) and "admin" not in str(raised.value)


async def test_an_encoded_password_reaches_the_server_decoded_in_basic_auth() -> None:
    import asyncio
    import base64
    from datetime import UTC, datetime

    from aiohttp import web

    from shardline.records import ConsumedRecord, KinesisPosition

    seen: list[str] = []

    async def write(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/write", write)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        sink = sink_from_uri(f"influxdb://admin:12%2F34%23x@127.0.0.1:{port}/iot")
        assert isinstance(sink, InfluxDBSink)
        record = ConsumedRecord(
            b'{"t": 1.5}', "k", KinesisPosition("s", "shardId-0", "1"), arrival_time=datetime.now(UTC)
        )
        try:
            results = await asyncio.wait_for(sink.send([sink.encode(record)]), 10)
        finally:
            await sink.release()
    finally:
        await runner.cleanup()
    assert [r.outcome for r in results] == [Outcome.WRITTEN]
    assert seen == ["Basic " + base64.b64encode(b"admin:12/34#x").decode()]


def test_a_token_goes_over_plaintext_to_a_host_named_on_purpose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFLUX_TOKEN", "influx-secret-token")
    monkeypatch.setenv("SHARDLINE_ALLOW_PLAINTEXT_HOSTS", "influxdb")
    sink = sink_from_uri("influxdb://influxdb:8086?org=o&bucket=b")
    assert isinstance(sink, InfluxDBSink) and sink.url == "http://influxdb:8086"
    with pytest.raises(ConfigurationError, match="SHARDLINE_ALLOW_PLAINTEXT_HOSTS"):
        sink_from_uri("influxdb://influx.example.com:8086?org=o&bucket=b")


@pytest.mark.parametrize("query", ["u=admin&p=pw-secret", "password=pw-secret", "username=admin"])
def test_credentials_in_the_query_are_refused_without_echoing_them(
    query: str, caplog: pytest.LogCaptureFixture
) -> None:
    # InfluxDB 1.x reads ?u=&p=; this sink never sent them, and its plaintext warning quoted
    # the whole URI, password and all
    with caplog.at_level("DEBUG"), pytest.raises(ConfigurationError, match="USER:PASSWORD@") as raised:
        sink_from_uri(f"influxdb://influx.example.com:8086/iot?{query}")
    assert "pw-secret" not in str(raised.value)
    assert not [r for r in caplog.records if "pw-secret" in r.getMessage()]


def test_the_plaintext_warning_names_the_uri_without_its_options(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        sink_from_uri("influxdb://influx.example.com:8086?org=o&bucket=b&measurement=m")
    [warning] = [r.getMessage() for r in caplog.records if "plaintext" in r.getMessage()]
    assert "influxdb://influx.example.com:8086 " in warning and "org=" not in warning
