"""How a Kafka consumer's offset commits went: the ``on_commit`` callback every committing
consumer (the group member, a replay with a ``checkpoint_group``) hands librdkafka.

Without it librdkafka only logs a failed commit: a consumer whose commits were refused for good
(no right to commit offsets) read and wrote on for hours while each checkpoint counted as
persisted, and every restart read it all again.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError

from shardline import metrics_events as events
from shardline.errormap import from_kafka_error
from shardline.errors import AccessDeniedError, CheckpointError, FatalKafkaError, ShardlineError
from shardline.lograte import RepeatedWarning
from shardline.metrics import MetricsObserver

__all__ = ["CommitOutcomes", "commit_refused_for_good"]

_PERMANENT_COMMIT_CODES = frozenset(
    getattr(KafkaError, name)
    for name in ("OFFSET_METADATA_TOO_LARGE", "INVALID_COMMIT_OFFSET_SIZE")
    if hasattr(KafkaError, name)
)
"""Commit answers no later commit can change (besides those of :func:`commit_refused_for_good`)."""


def commit_refused_for_good(code: int, mapped: ShardlineError) -> bool:
    """Whether a failed offset commit will fail the same way at every later commit.

    Only answers known to be permanent count: a principal without the right to commit (MSK
    IAM's ``kafka-cluster:AlterGroup``, a Kafka ACL), offsets the broker refuses, a client
    librdkafka declared unusable.  Everything else -- a coordinator moving or away
    (``_WAIT_COORD`` after ``session.timeout.ms``), a rebalance in progress, this member
    dropped from the group (``UNKNOWN_MEMBER_ID``, then librdkafka rejoins) -- is retried by
    the next commit with the offsets still stored.
    """
    return isinstance(mapped, AccessDeniedError | FatalKafkaError) or code in _PERMANENT_COMMIT_CODES


class CommitOutcomes:
    """The outcomes of one consumer's offset commits (:meth:`on_commit`, its ``on_commit``).

    A commit refused for good is kept and raised by :meth:`raise_if_refused` (the consumer's
    next checkpoint), so the pipeline stops with it as for any store that refuses for good; a
    commit that succeeds clears it.  Any other failure is retried by the next commit and is
    counted (``KAFKA_CLIENT_ERROR``) and logged, one line per kind a minute.
    """

    def __init__(self, observer: MetricsObserver, log: logging.Logger, *, lost: str) -> None:
        """``lost`` ends the error's message: what a refused commit costs this consumer."""
        self._observer = observer
        self._warnings = RepeatedWarning(log)
        self._lost = lost
        self.refused: ShardlineError | None = None

    def on_commit(self, err: KafkaError | None, partitions: list[Any]) -> None:
        """librdkafka's ``on_commit``: served inside ``consume()`` on the thread that called it."""
        if err is None or err.code() == KafkaError.NO_ERROR:
            err = next((tp.error for tp in partitions if tp.error is not None), None)
        if err is None or err.code() == KafkaError.NO_ERROR:
            self.refused = None
            return
        if err.code() in (KafkaError._NO_OFFSET, KafkaError._DESTROY):
            return  # nothing acknowledged since the last commit; the client closing
        mapped = from_kafka_error(err)
        failed = type(mapped).__name__
        if commit_refused_for_good(err.code(), mapped):
            self.refused = mapped
        self._observer.on_event(events.KAFKA_CLIENT_ERROR, error=failed)
        self._warnings.warning(err.code(), "kafka offset commit failed: %s (%s)", failed, err.name())

    def raise_if_refused(self) -> None:
        """Raise the commit refused for good, if one was reported, as a non-retriable
        :class:`CheckpointError` (``__cause__`` the refusal)."""
        refused = self.refused
        if refused is not None:
            failure = CheckpointError(
                f"the group's offset commits are refused ({type(refused).__name__}): {self._lost}",
                retriable=False,
            )
            raise failure from refused
