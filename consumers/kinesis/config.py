"""Tuning of the Kinesis readers, in one validated object with documented defaults."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from shardline.aggregation import DeaggregationPolicy
from shardline.errors import ValidationError
from shardline.limits import EFO_SUBSCRIPTION_SECONDS, GET_RECORDS_MAX_LIMIT, ITERATOR_LIFETIME_SECONDS
from shardline.retry import RetryPolicy

__all__ = ["ReaderConfig"]


@dataclass(frozen=True, slots=True)
class ReaderConfig:
    """How the Kinesis readers pace, back off and buffer.

    Attributes:
        budget_share: fraction of the shard's 5 GetRecords calls/s this reader may use; leave the
            rest to other applications (a replay job typically takes 0.2 next to a live consumer).
        get_records_limit: ``Limit`` of each GetRecords call (1..10000).
        idle_backoff_initial / idle_backoff_max: pause after an empty response at the tip of the
            shard, doubling up to the maximum, so an idle shard costs few calls.
        throttle_backoff_initial / throttle_backoff_max: capped, fully-jittered exponential
            back-off after ProvisionedThroughputExceeded (retried for as long as it takes).
        max_transient_retries: consecutive 5xx / dropped connections tolerated before the reader
            gives up and raises.
        max_pending_batches: per-shard queue depth in :class:`~consumers.kinesis.KinesisSource`;
            a full queue pauses that shard's reader (back-pressure) instead of buffering more.
        subscription_seconds: how long an enhanced fan-out subscription is kept before the reader
            re-subscribes itself (AWS ends it at 300 s; re-subscribing earlier avoids the gap).
        resubscribe_backoff_initial / resubscribe_backoff_max: back-off after ResourceInUse on
            SubscribeToShard (a previous subscription of the same consumer is still open).
        consumer_active_timeout: how long to wait for a fan-out consumer to become ACTIVE.
        lease_renew_interval: how often a source renews the leases of the shards it reads.
        shard_discovery_interval: how often a source lists shards to find new ones (children of a
            split or merge, on-demand scaling).
        iterator_lifetime: age after which a held iterator is assumed expired and replaced before
            use (AWS: 300 s), which avoids a wasted call after a long back-pressure pause.
        deaggregation: whether KPL aggregates are expanded, the expansion bounds, and the
            event-id key that decides whether producer event ids are trusted as identity
            (:class:`~shardline.aggregation.DeaggregationPolicy`; docs/security.md).
    """

    budget_share: float = 1.0
    get_records_limit: int = GET_RECORDS_MAX_LIMIT
    idle_backoff_initial: float = 0.2
    idle_backoff_max: float = 1.0
    throttle_backoff_initial: float = 0.2
    throttle_backoff_max: float = 5.0
    max_transient_retries: int = 10
    max_pending_batches: int = 4
    subscription_seconds: float = EFO_SUBSCRIPTION_SECONDS - 15
    resubscribe_backoff_initial: float = 1.0
    resubscribe_backoff_max: float = 10.0
    consumer_active_timeout: float = 120.0
    lease_renew_interval: float = 10.0
    shard_discovery_interval: float = 10.0
    iterator_lifetime: float = ITERATOR_LIFETIME_SECONDS - 10
    deaggregation: DeaggregationPolicy = field(default_factory=DeaggregationPolicy)

    def __post_init__(self) -> None:
        if not 0.0 < self.budget_share <= 1.0:
            raise ValidationError("budget_share must be in (0, 1]")
        if not 1 <= self.get_records_limit <= GET_RECORDS_MAX_LIMIT:
            raise ValidationError(f"get_records_limit must be in 1..{GET_RECORDS_MAX_LIMIT}")
        _positive(
            idle_backoff_initial=self.idle_backoff_initial,
            idle_backoff_max=self.idle_backoff_max,
            throttle_backoff_initial=self.throttle_backoff_initial,
            throttle_backoff_max=self.throttle_backoff_max,
            subscription_seconds=self.subscription_seconds,
            resubscribe_backoff_initial=self.resubscribe_backoff_initial,
            resubscribe_backoff_max=self.resubscribe_backoff_max,
            consumer_active_timeout=self.consumer_active_timeout,
            lease_renew_interval=self.lease_renew_interval,
            shard_discovery_interval=self.shard_discovery_interval,
            iterator_lifetime=self.iterator_lifetime,
        )
        if self.idle_backoff_max < self.idle_backoff_initial:
            raise ValidationError("idle_backoff_max must be >= idle_backoff_initial")
        if self.throttle_backoff_max < self.throttle_backoff_initial:
            raise ValidationError("throttle_backoff_max must be >= throttle_backoff_initial")
        if self.resubscribe_backoff_max < self.resubscribe_backoff_initial:
            raise ValidationError("resubscribe_backoff_max must be >= resubscribe_backoff_initial")
        if self.subscription_seconds > EFO_SUBSCRIPTION_SECONDS:
            raise ValidationError(f"subscription_seconds must be <= {EFO_SUBSCRIPTION_SECONDS}")
        if self.iterator_lifetime > ITERATOR_LIFETIME_SECONDS:
            raise ValidationError(f"iterator_lifetime must be <= {ITERATOR_LIFETIME_SECONDS}")
        if self.max_transient_retries < 0:
            raise ValidationError("max_transient_retries must be >= 0")
        if self.max_pending_batches < 1:
            raise ValidationError("max_pending_batches must be >= 1")
        if not isinstance(self.deaggregation, DeaggregationPolicy):
            raise ValidationError("deaggregation must be a shardline.aggregation.DeaggregationPolicy")

    def throttle_retry(self, rng: random.Random | None = None) -> RetryPolicy:
        """The readers' back-off after throttling or transient errors, as the shared policy.

        Unbounded here: the readers themselves count transient failures against
        ``max_transient_retries`` and retry throttling for as long as it takes.
        """
        return _unbounded(self.throttle_backoff_initial, self.throttle_backoff_max, rng)

    def resubscribe_retry(self, rng: random.Random | None = None) -> RetryPolicy:
        """The ceilings of the back-off after ResourceInUse on SubscribeToShard."""
        return _unbounded(self.resubscribe_backoff_initial, self.resubscribe_backoff_max, rng)


def _unbounded(initial: float, maximum: float, rng: random.Random | None) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=None,
        deadline=None,
        initial_backoff=initial,
        max_backoff=maximum,
        rng=rng if rng is not None else random.Random(),
    )


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValidationError(f"{name} must be positive")
