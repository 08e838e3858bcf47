"""How a Kafka source reports an OAUTHBEARER token refresh that failed.

The wrapping itself is :func:`shardline.kafka_oauth.supervised_oauth`, applied by
:meth:`shardline.kafka_config.KafkaClientConfig.new_client` to every client.  A consumer has no
message whose failure could carry the cause (a consumer only stops receiving), so the typed
:class:`~shardline.errors.AuthenticationError` is surfaced as its other client errors are:
counted (``kafka_callback_errors``) and logged at most once a minute, with the typed error's
message (it names the cause's type, never a token or credential).
"""

from __future__ import annotations

from shardline import metrics_events as events
from shardline.errors import AuthenticationError
from shardline.kafka_oauth import TokenFailureHandler
from shardline.lograte import RepeatedWarning
from shardline.metrics import MetricsObserver

__all__ = ["token_failure_reporter"]

_FAILED_REFRESH = ("oauth_cb", AuthenticationError)
"""The kind under which token failures are rate-limited in a source's client-error log."""


def token_failure_reporter(observer: MetricsObserver, warnings: RepeatedWarning) -> TokenFailureHandler:
    """The ``on_token_failure`` of a source reporting to ``observer`` and logging through
    ``warnings`` (called on librdkafka's background thread)."""

    def report(error: AuthenticationError) -> None:
        observer.on_event(events.KAFKA_CALLBACK_ERRORS, 1, error=type(error).__name__)
        warnings.warning(_FAILED_REFRESH, "kafka client could not get an OAUTHBEARER token: %s", error)

    return report
