"""Planning a distributed replay: cut a bounded source into slices of about equal work.

The cutting itself is pure (``split_*``, :func:`balance`, :func:`contiguous_groups`) and unit
tested; the ``plan_*`` coroutines only list what the source holds and hand it to them.

* **S3 archive**: the objects under the prefix, in key order, grouped into contiguous key
  ranges of about equal bytes (one unit per object, its weight its size).
* **Kinesis**: every shard times equal time windows between ``--from`` and ``--to``; the first
  sequence number at or after each window's start is looked up (one GetShardIterator and one
  ``GetRecords(Limit=1)``) and recorded when found, so the runner starts exactly there.
* **Kafka**: each partition's offset range cut into pieces of about ``total / slices``
  offsets.

Kinesis and Kafka units are spread over the slices largest first, each to the lightest
slice so far (longest-processing-time greedy), which keeps slices within one unit of equal.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from consumers.kinesis.positions import may_be_ahead_of_service
from consumers.replay.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    Slice,
    Unit,
    manifest_to_json,
    s3_location,
    with_s3_client,
)
from shardline.errormap import map_aws_errors
from shardline.errors import ConfigurationError, InvalidRequestError
from shardline.shardmath import list_shards

if TYPE_CHECKING:
    from shardline.kafka_config import KafkaClientConfig

__all__ = [
    "SourceURI",
    "balance",
    "contiguous_groups",
    "kafka_partitions",
    "kafka_source_client",
    "parse_source",
    "plan_kafka",
    "plan_kinesis",
    "plan_s3",
    "save_manifest",
    "split_offsets",
    "split_window",
]


class SourceURI:
    """A parsed ``kinesis://STREAM``, ``kafka://BOOTSTRAP/TOPIC`` or ``s3://BUCKET/PREFIX``."""

    __slots__ = ("kind", "location", "path", "uri")

    def __init__(self, uri: str, kind: str, location: str, path: str) -> None:
        self.uri = uri
        self.kind = kind
        self.location = location
        self.path = path

    def __repr__(self) -> str:
        return f"SourceURI({self.uri!r})"


def parse_source(uri: str) -> SourceURI:
    """Parse a replay source URI (the same forms ``consume`` and ``replay`` take)."""
    parts = urlsplit(uri)
    if parts.scheme == "kinesis" and parts.netloc and parts.path in ("", "/"):
        return SourceURI(uri, "kinesis", parts.netloc, "")
    if parts.scheme == "kafka" and parts.netloc and parts.path.strip("/") and "," not in parts.path:
        _kafka_target(uri)  # its options (?security=...) are checked now, not on every runner
        return SourceURI(uri, "kafka", parts.netloc, parts.path.strip("/"))
    if parts.scheme == "s3" and parts.netloc:
        return SourceURI(uri, "s3", parts.netloc, parts.path.lstrip("/"))
    raise ConfigurationError(
        f"source must be kinesis://STREAM, kafka://BOOTSTRAP/TOPIC or s3://BUCKET/PREFIX, got {uri!r}"
    )


def _kafka_target(uri: str) -> Any:
    from consumers.cli import parse_kafka_uri

    return parse_kafka_uri(uri, require_group=False)


def kafka_source_client(uri: str) -> KafkaClientConfig:
    """The client for a ``kafka://`` source, with the security its ``?security=`` names.

    The planner's partition listing and every runner's readers connect the way ``consume``
    and single-process ``replay`` do: TLS or MSK IAM when the URI asks for it, plaintext
    to a host that is not loopback only with a warning.
    """
    from shardline.kafka_config import KafkaClientConfig, security_named

    target = _kafka_target(uri)
    log = logging.getLogger("shardline.replay")
    security = security_named(target.security, target.bootstrap_servers, log)
    return KafkaClientConfig(target.bootstrap_servers, security=security, client_id="shardline-replay")


# --- pure cutting -------------------------------------------------------------------------


def contiguous_groups(weights: Sequence[int], groups: int) -> list[range]:
    """Cut ``weights`` (in order) into at most ``groups`` non-empty runs of about equal sum.

    Each cut goes where the running total comes closest to its share of the whole (before or
    after the item that crosses it); every run holds at least one item, and there are never
    more runs than items.
    """
    if groups < 1:
        raise ConfigurationError("the number of slices must be at least 1")
    count = len(weights)
    groups = min(groups, count)
    if groups == 0:
        return []
    effective = [max(weight, 0) for weight in weights]
    if not any(effective):
        effective = [1] * count
    total = sum(effective)
    runs: list[range] = []
    start = 0
    running = 0
    for index, weight in enumerate(effective):
        cuts_left = groups - len(runs) - 1
        if cuts_left > 0 and index > start:
            boundary = total * (len(runs) + 1) / groups
            overshoot = running + weight - boundary
            must_cut = count - index == cuts_left  # one item left per remaining run
            if must_cut or (overshoot > 0 and overshoot > boundary - running):
                runs.append(range(start, index))
                start = index
        running += weight
    runs.append(range(start, count))
    return runs


def balance(weights: Sequence[int], groups: int) -> list[list[int]]:
    """Indices of ``weights`` spread over ``groups`` bins, heaviest first to the lightest bin.

    Bins that would stay empty are dropped (fewer units than slices).
    """
    if groups < 1:
        raise ConfigurationError("the number of slices must be at least 1")
    bins: list[list[int]] = [[] for _ in range(min(groups, len(weights)))]
    loads = [0] * len(bins)
    for index in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        lightest = min(range(len(bins)), key=lambda b: (loads[b], b))
        bins[lightest].append(index)
        loads[lightest] += weights[index]
    return [sorted(members) for members in bins]


def split_window(start: datetime, end: datetime, pieces: int) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into ``pieces`` equal windows (whole milliseconds, no gaps).

    Naive times are refused: the planner compares each window with the clock (in UTC), which
    ended a naive range in a bare ``TypeError``, and a manifest refuses them anyway.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ConfigurationError("range times must be timezone-aware")
    if end <= start:
        raise ConfigurationError("the range ends before it starts")
    span_ms = (end - start) // timedelta(milliseconds=1)
    pieces = max(1, min(pieces, span_ms))
    edges = [start + timedelta(milliseconds=span_ms * i // pieces) for i in range(pieces)] + [end]
    return list(itertools.pairwise(edges))


def split_offsets(start: int, end: int, piece: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut into runs of about ``piece`` offsets (at least one run)."""
    size = end - start
    count = max(1, round(size / piece)) if piece > 0 and size > 0 else 1
    edges = [start + size * i // count for i in range(count)] + [end]
    return list(itertools.pairwise(edges))


def _named(groups: Sequence[Sequence[Unit]]) -> tuple[Slice, ...]:
    """Number the slices and give every unit its lease key ``sNNNN-uNNNNN``."""
    slices = []
    for index, units in enumerate(groups):
        named = tuple(
            Unit(**{**_fields(unit), "name": f"s{index:04d}-u{position:05d}"})
            for position, unit in enumerate(units)
        )
        slices.append(Slice(index, named))
    return tuple(slices)


def _fields(unit: Unit) -> dict[str, Any]:
    return {name: getattr(unit, name) for name in Unit.__slots__}


def _spread(units: Sequence[Unit], slices: int) -> tuple[Slice, ...]:
    groups = balance([unit.weight for unit in units], slices)
    return _named([[units[i] for i in members] for members in groups])


# --- planners over a real source ----------------------------------------------------------


async def plan_s3(s3: Any, bucket: str, prefix: str, slices: int) -> tuple[Slice, ...]:
    """The archive's objects under ``prefix`` in key order, grouped by key range into slices."""
    objects: list[tuple[str, int]] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        response = await s3.list_objects_v2(**kwargs)
        objects.extend((item["Key"], int(item["Size"])) for item in response.get("Contents", []))
        if not response.get("IsTruncated"):
            break
        kwargs["ContinuationToken"] = response["NextContinuationToken"]
    if not objects:
        raise ConfigurationError(f"nothing to plan: no objects under s3://{bucket}/{prefix}")
    objects.sort()
    runs = contiguous_groups([size for _, size in objects], slices)
    return _named(
        [
            [Unit("", "s3", size, bucket=bucket, key=key) for key, size in objects[run.start : run.stop]]
            for run in runs
        ]
    )


async def plan_kinesis(
    kinesis: Any,
    stream: str,
    start: datetime,
    end: datetime,
    slices: int,
    *,
    shard_ids: Sequence[str] = (),
) -> tuple[Slice, ...]:
    """Shards x time windows, with each window's first sequence number where the stream has one."""
    shards = list(shard_ids) or [shard.shard_id for shard in await list_shards(kinesis, stream_name=stream)]
    if not shards:
        raise ConfigurationError(f"stream {stream!r} has no shards")
    windows = split_window(start, end, math.ceil(slices / len(shards)))
    units: list[Unit] = []
    for shard in shards:
        for window_start, window_end in windows:
            first = await _first_sequence(kinesis, stream, shard, window_start, window_end)
            units.append(
                Unit(
                    "",
                    "kinesis",
                    max(1, (window_end - window_start) // timedelta(milliseconds=1)),
                    stream=stream,
                    shard=shard,
                    start_time=window_start.isoformat(),
                    end_time=window_end.isoformat(),
                    start_sequence=first,
                )
            )
    return _spread(units, slices)


async def _first_sequence(
    kinesis: Any, stream: str, shard: str, window_start: datetime, window_end: datetime
) -> str | None:
    """The sequence number of the window's first record, if one GetRecords call shows it.

    A window that starts in the future (a range planned to end ahead of now) has no record
    yet, and Kinesis refuses an AT_TIMESTAMP iterator in the future: the runner starts such a
    window by time once it has begun. So does a window that began a moment ago by this
    machine's clock but not yet by the service's, which Kinesis refuses alike.
    """
    now = datetime.now(UTC)
    if window_start > now:
        return None
    try:
        with map_aws_errors("kinesis"):
            iterator = await kinesis.get_shard_iterator(
                StreamName=stream, ShardId=shard, ShardIteratorType="AT_TIMESTAMP", Timestamp=window_start
            )
    except InvalidRequestError:
        if may_be_ahead_of_service(window_start, now):
            return None  # begun by this clock, not yet by the service's: the same as above
        raise
    response = await kinesis.get_records(ShardIterator=iterator["ShardIterator"], Limit=1)
    records = response.get("Records", [])
    if not records:
        return None  # none yet, or an empty page: the runner starts by time instead
    arrival: datetime = records[0]["ApproximateArrivalTimestamp"]
    if arrival >= window_end:
        return None
    sequence: str = records[0]["SequenceNumber"]
    return sequence


async def plan_kafka(
    topic: str,
    ranges: Sequence[tuple[int, int, int]],
    slices: int,
) -> tuple[Slice, ...]:
    """Each ``(partition, start, end)`` offset range cut into pieces of about equal size."""
    if not ranges:
        raise ConfigurationError(f"nothing to plan: no offset ranges of topic {topic!r}")
    total = sum(end - start for _, start, end in ranges)
    piece = max(1, math.ceil(total / slices))
    units = [
        Unit(
            "",
            "kafka",
            max(1, stop - begin),
            topic=topic,
            partition=partition,
            start_offset=begin,
            end_offset=stop,
        )
        for partition, start, end in ranges
        for begin, stop in split_offsets(start, end, piece)
    ]
    return _spread(units, slices)


async def kafka_partitions(client: KafkaClientConfig, topic: str, *, timeout: float = 10.0) -> list[int]:
    """The topic's partition numbers, from the broker's metadata (``client``: the source's)."""
    from confluent_kafka.admin import AdminClient

    def fetch() -> list[int]:
        admin = client.new_client(AdminClient)
        metadata = admin.list_topics(topic=topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise ConfigurationError(f"Kafka topic {topic!r} not found")
        return sorted(metadata.partitions)

    return await asyncio.to_thread(fetch)


async def save_manifest(manifest: Manifest, destination: str, *, s3: Any = None) -> None:
    """Write the manifest to a file path or ``s3://BUCKET/KEY`` (``s3``: an aiobotocore client).

    A path that cannot be written is a :class:`ConfigurationError` naming it: the commands'
    error mapping took the bare ``OSError`` for a network failure ("TransientServiceError:
    FileNotFoundError (connection or timeout)", exit 1).
    """
    text = manifest_to_json(manifest)
    if len(text.encode()) > MAX_MANIFEST_BYTES:  # every runner would refuse to read it
        raise ConfigurationError(
            f"the manifest would be larger than {MAX_MANIFEST_BYTES} bytes, "
            "more than a runner reads: plan a narrower range or prefix"
        )
    if destination.startswith("s3://"):
        bucket, key = s3_location(destination)
        await with_s3_client(s3, lambda client: client.put_object(Bucket=bucket, Key=key, Body=text.encode()))
        return
    try:
        Path(destination).write_text(text)
    except OSError as exc:
        reason = exc.strerror or exc
        raise ConfigurationError(f"cannot write the manifest to {destination!r}: {reason}") from None
