"""An MSK IAM signer answer librdkafka cannot use is an AuthenticationError, and is not cached.

Before, a token that was not a string was cached and handed to librdkafka, an expiry that was
not a number raised a bare TypeError, a NaN expiry was cached for good, and an expiry already
past (a signer answering in seconds) had librdkafka refuse every token it was given.
"""

from __future__ import annotations

import math

import pytest

from shardline.errors import AuthenticationError
from shardline.kafka_config import MskIamTokenProvider

NOW = 1_700_000_000.0
GOOD = ("good-token", int((NOW + 900) * 1000))

UNUSABLE = {
    "no-token": (None, GOOD[1]),
    "empty-token": ("", GOOD[1]),
    "bytes-token": (b"tok", GOOD[1]),
    "text-expiry": ("secret-token-value", "soon"),
    "bool-expiry": ("secret-token-value", True),
    "nan-expiry": ("secret-token-value", math.nan),
    "infinite-expiry": ("secret-token-value", math.inf),
    "seconds-not-milliseconds": ("secret-token-value", int(NOW + 900)),
    "already-expired": ("secret-token-value", int((NOW - 1) * 1000)),
}


@pytest.mark.parametrize("answer", UNUSABLE.values(), ids=list(UNUSABLE))
def test_an_unusable_answer_is_refused_and_the_next_good_one_is_used(answer: tuple[object, object]) -> None:
    answers = [answer, GOOD]
    provider = MskIamTokenProvider("us-east-1", signer=lambda region: answers.pop(0), clock=lambda: NOW)  # type: ignore[arg-type,return-value]

    with pytest.raises(AuthenticationError) as raised:
        provider.oauth_cb(None)
    assert "secret-token-value" not in str(raised.value)

    assert provider.oauth_cb(None) == (GOOD[0], pytest.approx(NOW + 900))
    assert answers == []
