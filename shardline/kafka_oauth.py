"""The ``oauth_cb`` every Kafka client Shardline builds gets: token failures kept typed.

librdkafka asks for a fresh OAUTHBEARER token (MSK IAM) on its own background thread, at
about 80% of the token's life.  When the callback raises there, confluent-kafka drops the
exception: librdkafka only reports ``_AUTHENTICATION`` "OAuth callback raised exception"
through ``error_cb`` and logs authentication warnings, so the
:class:`~shardline.errors.AuthenticationError` naming why signing failed (STS out of
reach, expired credentials, a signer that hangs) was lost.  :func:`supervised_oauth` hands
that typed error to the client that owns the callback before librdkafka sees the failure,
so each client can surface it its own way (the producer as the cause of messages that time
out, a consumer as a counted, logged client error).

Only the error is handed on, never the token: the wrapper reads nothing of a successful
answer, and an exception that is not already an ``AuthenticationError`` is named by its
type alone (a signer's message can quote credential sources).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final, TypeAlias

from shardline.errors import AuthenticationError
from shardline.lograte import RepeatedWarning

__all__ = ["OAUTH_CB", "TokenFailureHandler", "supervised_oauth", "token_error", "token_failure_logger"]

log = logging.getLogger(__name__)

OAUTH_CB: Final = "oauth_cb"
"""confluent-kafka's configuration key for the token callback."""

TokenFailureHandler: TypeAlias = Callable[[AuthenticationError], None]
"""Told of a token request that failed (on librdkafka's background thread): must not block."""


def token_error(exc: Exception) -> AuthenticationError:
    """``exc`` as the typed error of a failed token request.

    An :class:`AuthenticationError` (what :class:`~shardline.kafka_config.MskIamTokenProvider`
    raises) is kept as it is; anything else is named by its type only and kept as the cause.
    """
    if isinstance(exc, AuthenticationError):
        return exc
    error = AuthenticationError(
        f"the OAUTHBEARER token callback raised {type(exc).__name__}", service="kafka"
    )
    error.__cause__ = exc
    return error


def token_failure_logger() -> TokenFailureHandler:
    """The handler of a client that reports errors only by logging (the tail follower, admin
    clients): a warning with the typed error's message (it never holds a token), each kind at
    most once a minute for that client (librdkafka asks again every few seconds)."""
    warnings = RepeatedWarning(log)

    def warn(error: AuthenticationError) -> None:
        warnings.warning(str(error), "kafka client could not get an OAUTHBEARER token: %s", error)

    return warn


def supervised_oauth(
    oauth_cb: Callable[[Any], Any],
    on_failure: TokenFailureHandler,
    on_success: Callable[[], None] | None = None,
) -> Callable[[Any], Any]:
    """``oauth_cb`` wrapped so a failure reaches ``on_failure`` typed, then librdkafka.

    Raising is how librdkafka learns the refresh failed (it asks again later), so the typed
    error is raised after ``on_failure`` saw it.  A handler that raises itself is logged by
    type and does not replace the token error.  ``on_success`` runs after each token handed
    out (a client clears a failure it keeps as a cause).
    """

    def oauth(oauthbearer_config: Any) -> Any:
        try:
            token = oauth_cb(oauthbearer_config)
        except Exception as exc:
            error = token_error(exc)
            _report(on_failure, error)
            if error is exc:
                raise
            raise error from exc
        if on_success is not None:
            try:
                on_success()
            except Exception as exc:  # noqa: BLE001 - the token is good; hand it out
                log.warning("reporting a refreshed OAUTHBEARER token raised %s", type(exc).__name__)
        return token

    return oauth


def _report(on_failure: TokenFailureHandler, error: AuthenticationError) -> None:
    try:
        on_failure(error)
    except Exception as exc:  # noqa: BLE001 - librdkafka must still hear of the token failure
        log.warning("reporting an OAUTHBEARER token failure raised %s", type(exc).__name__)
