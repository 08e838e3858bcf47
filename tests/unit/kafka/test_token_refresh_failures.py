"""A token refresh that fails after start-up reaches every Kafka client as its typed cause.

librdkafka asks for a new OAUTHBEARER token on its own background thread; when ``oauth_cb``
raises there, confluent-kafka drops the exception and librdkafka reports only
``_AUTHENTICATION`` "OAuth callback raised exception".  The producer wrapped its callback to
keep the :class:`AuthenticationError`; the consumers (``KafkaSource``, ``KafkaReplaySource``,
the tail follower) and admin clients handed librdkafka the bare provider, so the cause was
never seen.  Each client is built here with a double of its confluent-kafka class that keeps
the configuration; the test then plays librdkafka's part and calls the ``oauth_cb`` it got
once the signer has started failing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from consumers.kafka import KafkaConsumerConfig, KafkaReplaySource, KafkaSource, OffsetRange
from consumers.tail.kafka import KafkaFollower, KafkaStart
from producers import kafka as producer_module
from producers.kafka import KafkaProducer
from shardline import metrics_events as events
from shardline.errors import AuthenticationError
from shardline.kafka_config import KafkaClientConfig, MskIam, MskIamTokenProvider
from shardline.kafka_oauth import supervised_oauth

TOKEN = "token-canary-7f3a"
SECRET = "secret-key-canary"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Signer:
    """Signs 15-minute tokens until ``failing``; then fails quoting a secret."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.failing = False

    def __call__(self, region: str) -> tuple[str, int]:
        if self.failing:
            raise RuntimeError(f"sts unreachable with {SECRET}")
        return TOKEN, int((self.clock() + 900) * 1000)


class Captured:
    """A confluent-kafka client class double: keeps each configuration it is built with."""

    def __init__(self) -> None:
        self.confs: list[dict[str, Any]] = []

    def __call__(self, conf: dict[str, Any]) -> Any:
        self.confs.append(conf)
        return Idle()


class Idle:
    """The built client: every method is there and does nothing (none is called here)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.seen.append((name, dimensions))


def iam_client() -> tuple[KafkaClientConfig, Signer, Clock]:
    clock = Clock()
    signer = Signer(clock)
    provider = MskIamTokenProvider("us-east-1", signer=signer, clock=clock)
    return KafkaClientConfig("127.0.0.1:9", security=MskIam(provider)), signer, clock


def refresh_after_signing_broke(oauth_cb: Any, signer: Signer, clock: Clock) -> AuthenticationError:
    """librdkafka's part: a first token from the cache, then a refresh once it is near expiry."""
    token, _ = oauth_cb(None)
    assert token == TOKEN
    signer.failing = True
    clock.now += 890  # inside the refresh margin: the provider signs again, and fails
    with pytest.raises(AuthenticationError) as raised:
        oauth_cb(None)
    return raised.value


def assert_no_secret_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert TOKEN not in caplog.text
    assert SECRET not in caplog.text


def test_kafka_source_counts_and_logs_the_typed_cause(caplog: pytest.LogCaptureFixture) -> None:
    client, signer, clock = iam_client()
    factory, observer = Captured(), Events()
    KafkaSource(["t"], client, KafkaConsumerConfig("g"), observer=observer, consumer_factory=factory)
    with caplog.at_level(logging.WARNING):
        error = refresh_after_signing_broke(factory.confs[0]["oauth_cb"], signer, clock)
    assert (events.KAFKA_CALLBACK_ERRORS, {"error": "AuthenticationError"}) in observer.seen
    assert str(error) in caplog.text  # "could not sign an MSK IAM token (RuntimeError)"
    assert "RuntimeError" in caplog.text
    assert_no_secret_logged(caplog)


def test_kafka_replay_source_counts_and_logs_the_typed_cause(caplog: pytest.LogCaptureFixture) -> None:
    client, signer, clock = iam_client()
    factory, observer = Captured(), Events()
    KafkaReplaySource([OffsetRange("t", 0, 0, 5)], client, observer=observer, consumer_factory=factory)
    with caplog.at_level(logging.WARNING):
        error = refresh_after_signing_broke(factory.confs[0]["oauth_cb"], signer, clock)
    assert (events.KAFKA_CALLBACK_ERRORS, {"error": "AuthenticationError"}) in observer.seen
    assert str(error) in caplog.text
    assert_no_secret_logged(caplog)


async def test_tail_follower_logs_the_typed_cause(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import confluent_kafka

    class Built(Exception):
        """Ends batches() once the client is built: the test needs only its configuration."""

    confs: list[dict[str, Any]] = []

    def consumer(conf: dict[str, Any]) -> Any:
        confs.append(conf)
        raise Built

    monkeypatch.setattr(confluent_kafka, "Consumer", consumer)
    client, signer, clock = iam_client()
    follower = KafkaFollower(client, "t", KafkaStart("earliest"))
    with pytest.raises(Built):
        await anext(follower.batches())
    with caplog.at_level(logging.WARNING):
        error = refresh_after_signing_broke(confs[0]["oauth_cb"], signer, clock)
    assert str(error) in caplog.text
    assert_no_secret_logged(caplog)


def test_any_client_built_through_the_config_logs_the_typed_cause(caplog: pytest.LogCaptureFixture) -> None:
    """Admin clients (preflight, replay planning, topic checks) get the same wrapping."""
    client, signer, clock = iam_client()
    factory = Captured()
    client.new_client(factory)
    with caplog.at_level(logging.WARNING):
        error = refresh_after_signing_broke(factory.confs[0]["oauth_cb"], signer, clock)
    assert str(error) in caplog.text
    assert_no_secret_logged(caplog)


def test_the_producer_keeps_the_typed_cause_until_a_token_is_handed_out(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory, observer = Captured(), Events()
    monkeypatch.setattr(producer_module, "Producer", factory)
    client, signer, clock = iam_client()
    producer = KafkaProducer("t", client, observer=observer)
    oauth_cb = factory.confs[0]["oauth_cb"]
    with caplog.at_level(logging.WARNING):
        error = refresh_after_signing_broke(oauth_cb, signer, clock)
    assert producer._callback_error is error
    assert (events.KAFKA_CALLBACK_ERRORS, {"topic": "t", "error": "AuthenticationError"}) in observer.seen
    assert_no_secret_logged(caplog)
    signer.failing = False
    assert oauth_cb(None)[0] == TOKEN
    assert producer._callback_error is None


def test_a_callback_failing_otherwise_is_an_authentication_error_named_by_type() -> None:
    reported: list[AuthenticationError] = []

    def broken(config: Any) -> Any:
        raise ValueError(f"bad {SECRET}")

    def handler_that_raises(error: AuthenticationError) -> None:
        reported.append(error)
        raise RuntimeError("observer bug")

    with pytest.raises(AuthenticationError) as raised:
        supervised_oauth(broken, handler_that_raises)(None)
    assert reported == [raised.value]
    assert "ValueError" in str(raised.value) and SECRET not in str(raised.value)
    assert isinstance(raised.value.__cause__, ValueError)
