"""Building a Kafka client: what fails there is a typed error, raised before librdkafka waits.

confluent-kafka's constructors call ``oauth_cb`` and wait up to 10 s for a token.  An MSK IAM
signer failing there made every constructor wait that long, then raise an untyped
``KafkaException`` ("OAuth token not set") -- ``KafkaSource`` even a ``SystemError`` -- with the
:class:`AuthenticationError` naming the cause lost; a pass-through property librdkafka does
not know was an untyped ``KafkaException`` too.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consumers.kafka import KafkaConsumerConfig, KafkaReplaySource, KafkaSource, OffsetRange
from consumers.replay.kafka_range import offset_ranges
from producers.kafka import KafkaProducer, KafkaProducerConfig
from shardline.errors import AuthenticationError, ConfigurationError
from shardline.kafka_config import KafkaClientConfig, MskIam, MskIamTokenProvider


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Signer:
    """Counts its calls; fails with a message quoting a secret, or signs a 15-minute token."""

    def __init__(self, *, fails: bool) -> None:
        self.fails = fails
        self.calls = 0

    def __call__(self, region: str) -> tuple[str, int]:
        self.calls += 1
        if self.fails:
            raise RuntimeError("sts unreachable with secret-key-canary")
        return "token", int((time.time() + 900) * 1000)


def _iam_client(signer: Signer) -> KafkaClientConfig:
    provider = MskIamTokenProvider("us-east-1", signer=signer)
    return KafkaClientConfig(f"127.0.0.1:{_closed_port()}", security=MskIam(provider))


def _never_built(conf: dict[str, Any]) -> Any:
    raise AssertionError("the consumer was built although the token could not be signed")


BUILDERS: dict[str, Callable[[KafkaClientConfig], Any]] = {
    "producer": lambda client: KafkaProducer("t", client),
    "source": lambda client: KafkaSource(
        ["t"], client, KafkaConsumerConfig("g"), consumer_factory=_never_built
    ),
    "replay": lambda client: KafkaReplaySource(
        [OffsetRange("t", 0, 0, 5)], client, consumer_factory=_never_built
    ),
}


@pytest.mark.parametrize("build", BUILDERS.values(), ids=list(BUILDERS))
def test_a_token_that_cannot_be_signed_is_an_authentication_error_before_the_client(
    build: Callable[[KafkaClientConfig], Any],
) -> None:
    signer = Signer(fails=True)
    with pytest.raises(AuthenticationError) as raised:
        build(_iam_client(signer))
    assert signer.calls == 1
    assert "secret-key-canary" not in str(raised.value)


async def test_a_replay_by_times_cannot_sign_either() -> None:
    now = datetime.now(UTC)
    with pytest.raises(AuthenticationError):
        await offset_ranges(
            _iam_client(Signer(fails=True)), "t", from_time=now - timedelta(hours=1), to_time=now
        )


def test_the_token_signed_first_is_the_one_the_client_gets() -> None:
    signer = Signer(fails=False)
    producer = KafkaProducer("t", _iam_client(signer))
    assert signer.calls == 1  # confluent-kafka's constructor asked for it: served from the cache
    producer._producer.close()


def test_a_property_librdkafka_does_not_know_is_a_configuration_error() -> None:
    client = KafkaClientConfig(f"127.0.0.1:{_closed_port()}")
    with pytest.raises(ConfigurationError, match=r"no\.such\.property"):
        KafkaProducer("t", client, config=KafkaProducerConfig(librdkafka={"no.such.property": 1}))
    with pytest.raises(ConfigurationError, match=r"no\.such\.property"):
        KafkaSource(["t"], client, KafkaConsumerConfig("g", librdkafka={"no.such.property": 1}))


async def test_shardline_tail_cannot_sign_either() -> None:
    """``shardline tail`` built its consumer on its own, without the token signed first."""
    from consumers.tail.kafka import KafkaFollower, KafkaStart

    signer = Signer(fails=True)
    follower = KafkaFollower(_iam_client(signer), "t", KafkaStart("earliest"))
    with pytest.raises(AuthenticationError):
        async for _ in follower.batches():
            pass
    assert signer.calls == 1
