"""Per-shard, per-second load and the hot-shard verdicts drawn from it.

The bench routes every record it sends (or reads, for ``hotshards``) to its shard with the
same MD5 hash-range math Kinesis uses, and counts records, bytes and keys per shard per
second.  From those series this module derives each shard's share of traffic, peak and mean
rates against the per-shard limits, seconds over a limit, the keys behind each hot shard,
and what to do about it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.hotkeys import KeyCounter
from shardline.limits import SHARD_WRITE_BYTES_PER_SEC, SHARD_WRITE_RECORDS_PER_SEC

__all__ = [
    "EXACT_KEYS_PER_RUN",
    "KEY_SUMMARY_CAPACITY",
    "MIN_EXACT_KEYS",
    "HotShard",
    "KeySource",
    "ShardLoadTracker",
    "analyse_hot_shards",
]

EXACT_KEYS_PER_RUN = 40_000
"""Keys counted exactly in a run, shared by its shards: 10,000 a shard at the default 4.

A fixed 10,000 a shard held up to 640,000 keys at 64 shards and a million devices (about a
hundred bytes each), so the bench's memory grew with the shard count.  Past its share a
shard's counter turns to Space-Saving, which still names every key above 1/1,000 of the
shard's records, with its error bound."""
MIN_EXACT_KEYS = 1_000
"""No shard counts fewer keys exactly: Space-Saving keeps as many counters anyway."""

KEY_SUMMARY_CAPACITY = 1_000
"""Space-Saving counters a shard keeps past its exact share."""

KeySource = Callable[[int, int], dict[str, KeyCounter]]
"""``source(exact_limit, capacity)``: a counter per shard (see :meth:`ShardLoadTracker.count_keys_with`)."""

HOT_SHARE_FACTOR = 1.5
"""A shard is hot when its share of traffic is this many times its fair share (1/shards)..."""
HOT_UTILISATION = 0.8
"""...or when its peak second reaches this fraction of a per-shard limit."""


@dataclass
class _ShardSeries:
    records: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    bytes: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    keys: KeyCounter = field(default_factory=KeyCounter)


class ShardLoadTracker:
    """Counts what goes to (or comes from) each shard in each whole second of the run."""

    def __init__(self, shard_ids: list[str], *, exact_key_limit: int | None = None) -> None:
        """``exact_key_limit``: keys counted exactly per shard (default: this run's share of
        :data:`EXACT_KEYS_PER_RUN`)."""
        self.shard_ids = list(shard_ids)
        if exact_key_limit is None:
            exact_key_limit = max(MIN_EXACT_KEYS, EXACT_KEYS_PER_RUN // max(len(shard_ids), 1))
        self._exact_key_limit = exact_key_limit
        self._series: dict[str, _ShardSeries] = {shard: self._new_series() for shard in shard_ids}
        self._key_sources: list[KeySource] = []

    def _new_series(self) -> _ShardSeries:
        return _ShardSeries(keys=KeyCounter(exact_limit=self._exact_key_limit, capacity=KEY_SUMMARY_CAPACITY))

    def _series_for(self, shard_id: str) -> _ShardSeries:
        """The shard's series, started (with this run's exact-key share) for a shard new to the run."""
        series = self._series.get(shard_id)
        if series is None:
            series = self._series[shard_id] = self._new_series()
            self.shard_ids.append(shard_id)
        return series

    def add(self, shard_id: str, second: int, key: str, size: int) -> None:
        series = self._series_for(shard_id)
        series.records[second] += 1
        series.bytes[second] += size
        series.keys.add(key)

    def add_counts(self, shard_id: str, second: int, records: int, size: int) -> None:
        """``records`` records, ``size`` bytes in all, whose keys a key source counts
        (:meth:`count_keys_with`)."""
        series = self._series_for(shard_id)
        series.records[second] += records
        series.bytes[second] += size

    def count_keys_with(self, source: KeySource) -> None:
        """Let ``source`` count the keys of the records given to :meth:`add_counts`.

        It is called once, when keys are first read (:meth:`keys`, :meth:`to_dict`), with
        this tracker's exact-key limit and summary capacity, and returns a counter per shard;
        a shard that also counted keys itself gets the merge of both.
        """
        self._key_sources.append(source)

    def _settle_keys(self) -> None:
        sources, self._key_sources = self._key_sources, []
        for source in sources:
            for shard_id, counter in source(self._exact_key_limit, KEY_SUMMARY_CAPACITY).items():
                series = self._series_for(shard_id)
                series.keys = KeyCounter.merged([series.keys, counter]) if series.keys.total else counter

    def seconds(self) -> int:
        last = max((max(s.records, default=-1) for s in self._series.values()), default=-1)
        return last + 1

    def per_second(self, duration_seconds: int | None = None) -> dict[str, dict[str, list[int]]]:
        """``{shard: {"records": [...], "bytes": [...]}}``, one value per second of the run."""
        span = duration_seconds if duration_seconds is not None else self.seconds()
        return {
            shard: {
                "records": [series.records.get(t, 0) for t in range(span)],
                "bytes": [series.bytes.get(t, 0) for t in range(span)],
            }
            for shard, series in self._series.items()
        }

    def keys(self, shard_id: str) -> KeyCounter:
        if self._key_sources:
            self._settle_keys()
        return self._series[shard_id].keys

    def to_dict(self) -> dict[str, Any]:
        """Every shard's per-second series and key counter, for a partial result."""
        if self._key_sources:
            self._settle_keys()
        return {
            shard: {
                "records": {str(t): n for t, n in series.records.items()},
                "bytes": {str(t): n for t, n in series.bytes.items()},
                "keys": series.keys.to_dict(),
            }
            for shard, series in self._series.items()
        }

    @classmethod
    def merged(cls, parts: list[tuple[dict[str, Any], int]]) -> ShardLoadTracker:
        """The union of partial trackers, each ``(to_dict(), seconds to shift it by)``.

        Series of one shard add up second by second; key counters merge with their bounds.
        """
        shards: dict[str, list[tuple[dict[str, Any], int]]] = {}
        for document, shift in parts:
            for shard, series in document.items():
                shards.setdefault(shard, []).append((series, shift))
        tracker = cls(sorted(shards))
        for shard, pieces in shards.items():
            target = tracker._series[shard]
            for series, shift in pieces:
                for t, n in series["records"].items():
                    target.records[int(t) + shift] += int(n)
                for t, n in series["bytes"].items():
                    target.bytes[int(t) + shift] += int(n)
            target.keys = KeyCounter.merged([KeyCounter.from_dict(series["keys"]) for series, _ in pieces])
        return tracker


@dataclass(frozen=True, slots=True)
class HotShard:
    shard_id: str
    share: float
    seconds_over_limit: int
    peak_records_per_sec: int
    peak_bytes_per_sec: int
    top_keys: list[dict[str, Any]]
    recommendation: str


def _per_shard_summary(
    series: dict[str, list[int]], records_limit: float, bytes_limit: float, count_records: bool
) -> dict[str, Any]:
    records, sizes = series["records"], series["bytes"]
    seconds = max(len(records), 1)
    over = sum(
        1
        for r, b in zip(records, sizes, strict=True)
        if b > bytes_limit or (count_records and r > records_limit)
    )
    return {
        "records_total": sum(records),
        "bytes_total": sum(sizes),
        "records_per_sec_mean": sum(records) / seconds,
        "records_per_sec_peak": max(records, default=0),
        "bytes_per_sec_mean": sum(sizes) / seconds,
        "bytes_per_sec_peak": max(sizes, default=0),
        "seconds_over_limit": over,
    }


def analyse_hot_shards(
    tracker: ShardLoadTracker,
    *,
    duration_seconds: int | None = None,
    aggregated: bool = False,
    records_limit: float = SHARD_WRITE_RECORDS_PER_SEC,
    bytes_limit: float = SHARD_WRITE_BYTES_PER_SEC,
    top: int = 5,
    kafka: bool = False,
) -> dict[str, Any]:
    """Per-shard summaries, the hot shards with their keys, and recommendations.

    With KPL aggregation the 1000 records/s quota counts aggregated Kinesis records, not
    user records, so only the byte quota decides "over limit" then.  ``kafka=True`` analyses
    Kafka partitions, which have no per-partition quota: only the skew of the traffic (share
    against the fair share) makes a partition hot, and the advice speaks of partitions.
    """
    if kafka:
        return _analyse_partitions(tracker, duration_seconds, top)
    per_second = tracker.per_second(duration_seconds)
    count_records = not aggregated
    shards = {
        shard: _per_shard_summary(series, records_limit, bytes_limit, count_records)
        for shard, series in per_second.items()
    }
    total = sum(s["records_total"] for s in shards.values()) or 1
    fair = 1.0 / max(len(shards), 1)
    hot: list[HotShard] = []
    for shard, summary in sorted(shards.items()):
        share = summary["records_total"] / total
        summary["share"] = share
        utilisation = max(
            summary["bytes_per_sec_peak"] / bytes_limit,
            summary["records_per_sec_peak"] / records_limit if count_records else 0.0,
        )
        summary["peak_utilisation"] = utilisation
        if summary["records_total"] == 0:
            continue
        if (
            share >= HOT_SHARE_FACTOR * fair
            or utilisation >= HOT_UTILISATION
            or summary["seconds_over_limit"]
        ):
            counter = tracker.keys(shard)
            keys = [
                {
                    "key": h.key,
                    "count": h.count,
                    "error": h.error,
                    "share_of_shard": h.count / max(counter.total, 1),
                }
                for h in counter.top(top)
            ]
            hot.append(
                HotShard(
                    shard_id=shard,
                    share=share,
                    seconds_over_limit=summary["seconds_over_limit"],
                    peak_records_per_sec=summary["records_per_sec_peak"],
                    peak_bytes_per_sec=summary["bytes_per_sec_peak"],
                    top_keys=keys,
                    recommendation=_recommend(
                        summary, keys, len(shards), bytes_limit, records_limit, count_records
                    ),
                )
            )
    return {
        "shards": shards,
        "hot_shards": [
            {
                "shard_id": h.shard_id,
                "share": h.share,
                "seconds_over_limit": h.seconds_over_limit,
                "peak_records_per_sec": h.peak_records_per_sec,
                "peak_bytes_per_sec": h.peak_bytes_per_sec,
                "top_keys": h.top_keys,
                "recommendation": h.recommendation,
            }
            for h in hot
        ],
        "keys_exact": all(tracker.keys(s).exact for s in tracker.shard_ids),
        "reshard_to": _reshard_target(shards, bytes_limit, records_limit, count_records),
    }


def _top_keys(tracker: ShardLoadTracker, shard: str, top: int) -> list[dict[str, Any]]:
    counter = tracker.keys(shard)
    return [
        {"key": h.key, "count": h.count, "error": h.error, "share_of_shard": h.count / max(counter.total, 1)}
        for h in counter.top(top)
    ]


def _analyse_partitions(tracker: ShardLoadTracker, duration_seconds: int | None, top: int) -> dict[str, Any]:
    """Skew-only analysis of Kafka partitions (no quotas, so never "over a limit")."""
    per_second = tracker.per_second(duration_seconds)
    unlimited = math.inf
    shards = {
        shard: _per_shard_summary(series, unlimited, unlimited, count_records=False)
        for shard, series in per_second.items()
    }
    total = sum(s["records_total"] for s in shards.values()) or 1
    fair = 1.0 / max(len(shards), 1)
    hot: list[dict[str, Any]] = []
    for shard, summary in sorted(shards.items()):
        share = summary["records_total"] / total
        summary["share"] = share
        summary["peak_utilisation"] = 0.0
        if summary["records_total"] == 0 or share < HOT_SHARE_FACTOR * fair:
            continue
        keys = _top_keys(tracker, shard, top)
        if keys and keys[0]["share_of_shard"] >= 0.5:
            advice = (
                f"key {keys[0]['key']!r} carries {keys[0]['share_of_shard']:.0%} of this partition "
                f"({share:.0%} of all traffic, {share / fair:.1f}x a fair share): one consumer must read it "
                "alone; salt the key (producers.keys.salted) if per-key order allows, or live with the skew"
            )
        else:
            advice = (
                f"{share:.0%} of all traffic ({share / fair:.1f}x a fair share) over many keys: add "
                "partitions or change the partitioning key so consumers share the load evenly"
            )
        hot.append(
            {
                "shard_id": shard,
                "share": share,
                "seconds_over_limit": 0,
                "peak_records_per_sec": summary["records_per_sec_peak"],
                "peak_bytes_per_sec": summary["bytes_per_sec_peak"],
                "top_keys": keys,
                "recommendation": advice,
            }
        )
    return {
        "shards": shards,
        "hot_shards": hot,
        "keys_exact": all(tracker.keys(s).exact for s in tracker.shard_ids),
        "reshard_to": max(len(shards), 1),
    }


def _recommend(
    summary: dict[str, Any],
    keys: list[dict[str, Any]],
    shard_count: int,
    bytes_limit: float,
    records_limit: float,
    count_records: bool,
) -> str:
    """Salt a dominant key over enough shards to fit its peak; otherwise add shards."""
    peak_need = max(
        summary["bytes_per_sec_peak"] / bytes_limit,
        summary["records_per_sec_peak"] / records_limit if count_records else 0.0,
    )
    if keys and keys[0]["share_of_shard"] >= 0.5:
        key = keys[0]["key"]
        buckets = max(
            2, min(shard_count, math.ceil(peak_need * keys[0]["share_of_shard"] / HOT_UTILISATION) + 1)
        )
        return (
            f"key {key!r} carries {keys[0]['share_of_shard']:.0%} of this shard: salt it over {buckets} "
            f"shards (producers.keys.salted(..., buckets={buckets}, hot_keys=[{key!r}])); "
            "per-key order is then lost for that key"
        )
    if peak_need >= HOT_UTILISATION:
        return (
            f"load is spread over many keys at {peak_need:.0%} of a shard's limit at peak: split this shard "
            "(SplitShard) or reshard the stream (UpdateShardCount)"
        )
    return "skewed but within limits: watch it; no action needed at this rate"


def _reshard_target(
    shards: dict[str, dict[str, Any]], bytes_limit: float, records_limit: float, count_records: bool
) -> int:
    """Shards needed for the observed total peak at 80% of the limits, if keys were spread evenly."""
    peak_bytes = sum(s["bytes_per_sec_peak"] for s in shards.values())
    peak_records = sum(s["records_per_sec_peak"] for s in shards.values())
    need: float = peak_bytes / (bytes_limit * HOT_UTILISATION)
    if count_records:
        need = max(need, peak_records / (records_limit * HOT_UTILISATION))
    return max(1, math.ceil(need))
