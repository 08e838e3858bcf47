"""Producer-assigned event ids a consumer can trust: a keyed MAC next to the id.

Anything that can put one record on a stream (a device behind an IoT rule, a mis-configured
client) can also write bytes that look like a KPL aggregate with an ``event_id`` tag, or a
Kafka message with an ``event_id`` header.  If such an id chose the sink key, one crafted
record could overwrite any item of the sink table.  So a consumer keys records by their
position (stream/shard/sequence/sub-sequence, topic/partition/offset) unless the deployment
opts in by giving producers and consumers the same secret key: a producer then sends
``HMAC-SHA256(key, event id + data)`` (truncated to 128 bits) with each event id, and a
consumer uses the id as the record's identity only when the MAC verifies.  Without a key,
event ids are informational (``ConsumedRecord.event_id``) and never choose a sink key.

The MAC covers the data too, so a party that can read the stream and write to it still
cannot reuse a valid (id, MAC) pair to overwrite an item with different bytes.

Keys come from the environment (:data:`KEY_ENV`, :data:`PREVIOUS_KEYS_ENV`) or from an AWS
Secrets Manager secret named by :data:`SECRET_ARN_ENV`, resolved once at startup; see
docs/security.md for rotation (consumers accept the previous keys while producers move on).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from shardline.errors import ConfigurationError

__all__ = [
    "EVENT_ID_MAC_HEADER",
    "EVENT_ID_MAC_TAG",
    "KEY_ENV",
    "PREVIOUS_KEYS_ENV",
    "SECRET_ARN_ENV",
    "EventIdKey",
]

EVENT_ID_MAC_TAG: Final = "event_id_mac"
"""KPL tag key carrying the MAC of a record's ``event_id`` tag."""

EVENT_ID_MAC_HEADER: Final = "shardline-event-id-mac"
"""Kafka header carrying the MAC of a message's event-id header."""

KEY_ENV: Final = "SHARDLINE_EVENT_ID_KEY"
"""The current key (at least 32 characters): producers sign with it, consumers verify with it."""

PREVIOUS_KEYS_ENV: Final = "SHARDLINE_EVENT_ID_PREVIOUS_KEYS"
"""Comma-separated keys consumers still accept during a rotation (never used to sign)."""

SECRET_ARN_ENV: Final = "SHARDLINE_EVENT_ID_KEY_SECRET_ARN"  # noqa: S105 - a variable name
"""A Secrets Manager secret holding the key, or JSON ``{"current": ..., "previous": [...]}``."""

MIN_KEY_CHARS: Final = 32
_MAC_BYTES: Final = 16
_DOMAIN: Final = b"shardline-event-id-v1\x00"


def _key_bytes(value: str, what: str) -> bytes:
    if len(value) < MIN_KEY_CHARS:
        raise ConfigurationError(f"{what} must be at least {MIN_KEY_CHARS} characters")
    return value.encode("utf-8")


class EventIdKey:
    """Signs and verifies event ids; holds the current key and the ones being rotated out.

    Its ``repr`` never shows a key.
    """

    __slots__ = ("_current", "_keys")

    def __init__(self, current: str, previous: Sequence[str] = ()) -> None:
        self._current = _key_bytes(current, "the event-id key")
        self._keys = (self._current, *(_key_bytes(p, "a previous event-id key") for p in previous))

    def __repr__(self) -> str:
        return f"EventIdKey(<{len(self._keys)} key(s)>)"

    def mac(self, event_id: str, data: bytes) -> str:
        """The MAC text that travels next to ``event_id`` (22 characters, URL-safe base64)."""
        return _mac(self._current, event_id, data)

    def accepts(self, event_id: str, data: bytes, mac: str | None) -> bool:
        """Whether ``mac`` was made by a holder of one of the accepted keys for these bytes.

        ``mac`` comes with the record, so it is anything its writer chose: a MAC made here is
        URL-safe base64, and anything else (non-ASCII text, which ``hmac.compare_digest``
        refuses with a TypeError, or not text at all) is simply not one.
        """
        if type(mac) is not str or not mac.isascii():
            return False
        return any(hmac.compare_digest(_mac(key, event_id, data), mac) for key in self._keys)

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        secrets_client: Callable[[], Any] | None = None,
    ) -> EventIdKey | None:
        """The key the environment configures, or ``None`` (event ids stay informational).

        :data:`SECRET_ARN_ENV` wins over :data:`KEY_ENV`; the secret is read once, here.
        ``secrets_client`` builds the Secrets Manager client (default: boto3 with the
        standard AWS configuration).
        """
        env = os.environ if environ is None else environ
        arn = env.get(SECRET_ARN_ENV, "").strip()
        if arn:
            return cls._from_secret(arn, secrets_client)
        current = env.get(KEY_ENV, "")
        if not current:
            if env.get(PREVIOUS_KEYS_ENV):
                raise ConfigurationError(f"{PREVIOUS_KEYS_ENV} is set but {KEY_ENV} is not")
            return None
        previous = [p for p in env.get(PREVIOUS_KEYS_ENV, "").split(",") if p]
        return cls(current, previous)

    @classmethod
    def _from_secret(cls, arn: str, secrets_client: Callable[[], Any] | None) -> EventIdKey:
        from shardline.errormap import map_aws_errors

        with map_aws_errors("secretsmanager"):
            if secrets_client is None:
                from shardline.clients import boto3_client

                client = boto3_client("secretsmanager")
            else:
                client = secrets_client()
            secret = client.get_secret_value(SecretId=arn)
        text = secret.get("SecretString")
        if not isinstance(text, str) or not text:
            raise ConfigurationError(f"the secret {arn} has no SecretString holding the event-id key")
        return cls._from_secret_text(text, arn)

    @classmethod
    def _from_secret_text(cls, text: str, arn: str) -> EventIdKey:
        if not text.lstrip().startswith("{"):
            return cls(text)
        try:
            document = json.loads(text)
            current = document["current"]
            previous = document.get("previous", [])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigurationError(
                f'the secret {arn} must hold the key, or JSON {{"current": KEY, "previous": [KEYS]}}'
            ) from None
        if not isinstance(current, str) or not isinstance(previous, list):
            raise ConfigurationError(f"the secret {arn}: current must be a string and previous a list")
        return cls(current, [str(p) for p in previous])


def _mac(key: bytes, event_id: str, data: bytes) -> str:
    encoded = event_id.encode("utf-8")
    message = b"".join((_DOMAIN, len(encoded).to_bytes(4, "big"), encoded, data))
    digest = hmac.digest(key, message, hashlib.sha256)[:_MAC_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
