"""Kafka client configuration: security settings and the MSK IAM token provider (offline)."""

from __future__ import annotations

import base64
import threading
import time
from urllib.parse import parse_qs, urlparse

import pytest
from confluent_kafka import Producer

from shardline.errors import AuthenticationError, ConfigurationError
from shardline.kafka_config import (
    KafkaClientConfig,
    MskIam,
    MskIamTokenProvider,
    Plaintext,
    Scram,
    Tls,
    TlsSettings,
)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingSigner:
    """Signs tokens valid for 900 s from the clock's time, in milliseconds like the real signer."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[str] = []

    def __call__(self, region: str) -> tuple[str, int]:
        self.calls.append(region)
        return f"token-{len(self.calls)}", int((self.clock.now + 900) * 1000)


def test_oauth_cb_converts_the_signers_milliseconds_to_seconds() -> None:
    clock = FakeClock(1_700_000_000.0)
    provider = MskIamTokenProvider("eu-west-1", signer=CountingSigner(clock), clock=clock)

    token, expiry = provider.oauth_cb("")

    assert token == "token-1"
    assert expiry == pytest.approx(1_700_000_900.0)


def test_token_is_reused_until_the_refresh_margin_then_resigned() -> None:
    clock = FakeClock(1_000.0)
    signer = CountingSigner(clock)
    provider = MskIamTokenProvider("us-east-1", signer=signer, refresh_margin_s=300, clock=clock)

    first = provider.oauth_cb(None)
    clock.now += 500  # 400 s of life left: more than the margin
    assert provider.oauth_cb(None) == first
    clock.now += 150  # 250 s left: inside the margin, re-sign before expiry
    second = provider.oauth_cb(None)

    assert second[0] == "token-2"
    assert second[1] == pytest.approx(clock.now + 900)
    assert signer.calls == ["us-east-1", "us-east-1"]


def test_librdkafkas_refresh_at_80_percent_gets_a_fresh_token() -> None:
    clock = FakeClock(0.0)
    provider = MskIamTokenProvider("us-east-1", signer=CountingSigner(clock), clock=clock)
    _, expiry = provider.oauth_cb(None)
    clock.now = 0.8 * expiry  # librdkafka asks again at 80% of the lifetime

    token, new_expiry = provider.oauth_cb(None)

    assert token == "token-2"
    assert new_expiry > expiry


def test_signer_failure_is_an_authentication_error_without_its_message() -> None:
    def failing(region: str) -> tuple[str, int]:
        raise ValueError("secret-access-key=abc123 could not be used")

    provider = MskIamTokenProvider("us-east-1", signer=failing)

    with pytest.raises(AuthenticationError) as info:
        provider.token()

    assert "abc123" not in str(info.value)
    assert info.value.__cause__ is None


def test_provider_is_thread_safe_and_signs_once_for_concurrent_callers() -> None:
    clock = FakeClock(0.0)
    signer = CountingSigner(clock)
    provider = MskIamTokenProvider("us-east-1", signer=signer, clock=clock)
    results: list[tuple[str, float]] = []
    threads = [threading.Thread(target=lambda: results.append(provider.oauth_cb(None))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(signer.calls) == 1
    assert {token for token, _ in results} == {"token-1"}


def test_real_signer_with_dummy_credentials_gives_a_presigned_url_token() -> None:
    provider = MskIamTokenProvider("us-east-1")  # default chain: the test's dummy credentials
    before = time.time()

    token, expiry = provider.oauth_cb(None)

    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    query = parse_qs(urlparse(url).query)
    assert urlparse(url).hostname == "kafka.us-east-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert before + 800 < expiry < before + 1000  # seconds, not milliseconds
    assert "testing" not in repr(provider)


def test_region_comes_from_aws_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    assert MskIamTokenProvider(signer=lambda region: ("t", 0)).region == "ap-southeast-2"


def test_confluent_client_calls_oauth_cb_and_accepts_its_seconds() -> None:
    clock_now = time.time()
    calls: list[str | None] = []

    def signer(region: str) -> tuple[str, int]:
        calls.append(region)
        return "opaque-token", int((clock_now + 900) * 1000)

    provider = MskIamTokenProvider("us-east-1", signer=signer)
    errors: list[str] = []
    conf = KafkaClientConfig("127.0.0.1:9", security=MskIam(provider, TlsSettings())).to_confluent()
    # Plain SASL so no TLS handshake is attempted against the closed port.
    conf["security.protocol"] = "SASL_PLAINTEXT"
    conf["error_cb"] = lambda err: errors.append(err.str())
    producer = Producer(conf)
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        producer.poll(0.1)

    assert calls == ["us-east-1"]
    assert not any("token" in error.lower() and "expir" in error.lower() for error in errors)


def test_security_settings_map_to_librdkafka_properties() -> None:
    assert KafkaClientConfig("b:9092").to_confluent()["security.protocol"] == "PLAINTEXT"
    tls = KafkaClientConfig("b:9094", security=Tls(TlsSettings(ca_location="/ca.pem"))).to_confluent()
    assert tls["security.protocol"] == "SSL"
    assert tls["ssl.ca.location"] == "/ca.pem"
    assert tls["enable.ssl.certificate.verification"] is True
    assert tls["ssl.endpoint.identification.algorithm"] == "https"
    scram = KafkaClientConfig("b:9096", security=Scram("alice", "s3cret")).to_confluent()
    assert scram["security.protocol"] == "SASL_SSL"
    assert scram["sasl.mechanisms"] == "SCRAM-SHA-512"
    assert (scram["sasl.username"], scram["sasl.password"]) == ("alice", "s3cret")
    iam = KafkaClientConfig(
        "b:9098", security=MskIam(MskIamTokenProvider("us-east-1", signer=lambda r: ("t", 0)))
    ).to_confluent()
    assert iam["sasl.mechanisms"] == "OAUTHBEARER"
    assert callable(iam["oauth_cb"])
    assert "debug" not in iam


def test_secrets_never_appear_in_reprs() -> None:
    config = KafkaClientConfig(
        "b:9096", security=Scram("alice", "pa55word", tls=TlsSettings(key_password="k3ypass"))
    )
    text = repr(config)
    assert "pa55word" not in text
    assert "k3ypass" not in text
    provider = MskIamTokenProvider("us-east-1", signer=lambda r: ("tok-en-value", 10**13))
    provider.token()
    assert "tok-en-value" not in repr(provider)
    assert "tok-en-value" not in repr(MskIam(provider))


@pytest.mark.parametrize(
    "build",
    [
        lambda: KafkaClientConfig(""),
        lambda: KafkaClientConfig("b:9092", extra={"sasl.password": "x"}),
        lambda: KafkaClientConfig("b:9092", extra={"security.protocol": "PLAINTEXT"}),
        lambda: Scram("", "x"),
        lambda: MskIamTokenProvider("us-east-1", signer=lambda r: ("t", 0), refresh_margin_s=901),
    ],
)
def test_bad_configuration_is_refused_at_construction(build: object) -> None:
    with pytest.raises(ConfigurationError):
        build()  # type: ignore[operator]


def test_extra_properties_pass_through_and_cannot_be_changed_later() -> None:
    extra = {"socket.keepalive.enable": True}
    config = KafkaClientConfig("b:9092", extra=extra)
    extra["socket.keepalive.enable"] = False
    assert config.to_confluent()["socket.keepalive.enable"] is True
    assert isinstance(Plaintext().to_confluent(), dict)
