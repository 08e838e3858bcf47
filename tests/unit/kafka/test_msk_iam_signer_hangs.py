"""An MSK IAM signer that does not answer is an AuthenticationError within a bound.

The signer resolves AWS credentials and may call STS (botocore waits up to 60 s per attempt,
with retries; a ``credential_process`` has no bound at all).  Called inline, a signer that hung
held a client's constructor -- on the event loop -- and librdkafka's background thread in
``oauth_cb`` for as long as it hung, with nothing reported.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from shardline.errors import AuthenticationError, ConfigurationError
from shardline.kafka_config import KafkaClientConfig, MskIam, MskIamTokenProvider

NOW = 1_700_000_000.0
TOKEN = ("signed-token-value", int((NOW + 900) * 1000))
WATCHDOG_S = 10.0
"""How long a test waits for a call that should have ended after ``sign_timeout_s``."""


class StuckSigner:
    """A signer that answers only once released, counting its calls."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, region: str) -> tuple[str, int]:
        self.calls += 1
        if not self.release.wait(WATCHDOG_S * 3):
            raise TimeoutError("the test never released the signer")
        return TOKEN


def outcome_within(call: Callable[[], object], bound: float) -> BaseException | object:
    """What ``call`` returned or raised, run on a thread; fails the test if it takes longer."""
    box: list[BaseException | object] = []

    def run() -> None:
        try:
            box.append(call())
        except BaseException as exc:  # handed to the test
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(bound)
    assert not thread.is_alive(), f"still waiting for the signer after {bound} s"
    return box[0]


def provider(signer: StuckSigner) -> MskIamTokenProvider:
    return MskIamTokenProvider("us-east-1", signer=signer, sign_timeout_s=0.2, clock=lambda: NOW)


def test_oauth_cb_gives_up_on_a_signer_that_does_not_answer() -> None:
    signer = StuckSigner()
    try:
        started = time.monotonic()
        raised = outcome_within(lambda: provider(signer).oauth_cb(None), WATCHDOG_S)
        assert isinstance(raised, AuthenticationError)
        assert raised.retriable and "0.2 s" in str(raised)
        assert time.monotonic() - started < WATCHDOG_S
    finally:
        signer.release.set()


def test_the_answer_that_came_late_serves_the_next_request_without_signing_again() -> None:
    signer = StuckSigner()
    tokens = provider(signer)
    try:
        assert isinstance(outcome_within(tokens.token, WATCHDOG_S), AuthenticationError)
        assert isinstance(outcome_within(tokens.token, WATCHDOG_S), AuthenticationError)
    finally:
        signer.release.set()
    assert outcome_within(tokens.token, WATCHDOG_S) == ("signed-token-value", NOW + 900)
    assert signer.calls == 1


def test_concurrent_requests_each_give_up_within_the_bound() -> None:
    signer = StuckSigner()
    tokens = provider(signer)
    results: list[BaseException | object] = []
    try:
        threads = [
            threading.Thread(target=lambda: results.append(outcome_within(tokens.token, WATCHDOG_S)))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WATCHDOG_S * 2)
    finally:
        signer.release.set()
    assert len(results) == 4 and all(isinstance(result, AuthenticationError) for result in results)
    assert signer.calls == 1


def test_building_a_client_gives_up_too() -> None:
    signer = StuckSigner()
    client = KafkaClientConfig("b-1.example:9098", security=MskIam(provider(signer)))
    try:
        built = outcome_within(lambda: client.new_client(lambda conf: conf), WATCHDOG_S)
        assert isinstance(built, AuthenticationError)
    finally:
        signer.release.set()


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), True])
def test_the_bound_must_be_a_positive_finite_number(timeout: float) -> None:
    with pytest.raises(ConfigurationError, match="sign_timeout_s"):
        MskIamTokenProvider("us-east-1", signer=lambda region: TOKEN, sign_timeout_s=timeout)
