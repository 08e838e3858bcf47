"""The plan of a distributed replay: independent slices, the job's settings, and a content hash.

``shardline replay plan`` writes a :class:`Manifest`; ``shardline replay run --manifest M
--slice I`` needs nothing else.  A manifest is JSON, kept in a file or at ``s3://BUCKET/KEY``.
Its ``hash`` is the SHA-256 of the canonical JSON of everything else in it (source, slices,
sink, checkpoint store, transform, dead letter, rate caps), so

* a manifest edited after planning is refused when read (:func:`manifest_from_json`), and
* the job's checkpoint namespace remembers the hash of the plan that first ran in it, so a
  slice of another plan (a re-plan with other bounds, another slice count) is refused
  instead of mixing its progress with the first plan's (see :mod:`consumers.replay.ledger`).

Each slice is a list of *units*, one lease each in the job's namespace: a Kinesis shard over
a time window (with the window's first sequence number when the planner found it), a Kafka
partition over an offset range, or one object of a Firehose S3 archive.  ``weight`` is the
planner's estimate of a unit's work (seconds of stream, offsets, bytes), used to balance
slices and to say in ``status`` how much is left.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from shardline.errors import ConfigurationError

__all__ = [
    "MANIFEST_VERSION",
    "Manifest",
    "RateCaps",
    "Slice",
    "Unit",
    "content_hash",
    "load_manifest",
    "manifest_from_json",
    "manifest_to_json",
    "s3_location",
    "with_s3_client",
]

MANIFEST_VERSION = 1

UnitKind = Literal["kinesis", "kafka", "s3"]


@dataclass(frozen=True, slots=True)
class Unit:
    """One independently resumable piece of a slice: its lease key is ``name``.

    ``kinesis``: ``stream``/``shard`` from ``start_time`` (or ``start_sequence`` when the planner
    found the first record of the window) to before ``end_time``.  ``kafka``: ``topic``/
    ``partition`` over offsets ``[start_offset, end_offset)``.  ``s3``: the object
    ``bucket``/``key`` of ``weight`` bytes.
    """

    name: str
    kind: UnitKind
    weight: int
    stream: str | None = None
    shard: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    start_sequence: str | None = None
    topic: str | None = None
    partition: int | None = None
    start_offset: int | None = None
    end_offset: int | None = None
    bucket: str | None = None
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Slice:
    """The units one runner processes; ``index`` is what ``run --slice`` names."""

    index: int
    units: tuple[Unit, ...]

    @property
    def weight(self) -> int:
        return sum(unit.weight for unit in self.units)


@dataclass(frozen=True, slots=True)
class RateCaps:
    """Whole-job caps in records per second (``None``: uncapped), divided among running slices.

    ``kinesis_calls_per_second`` caps GetRecords calls per shard (of the 5 a shard allows) so
    live consumers of the stream keep their share of its read budget.
    """

    read_records_per_second: float | None = None
    write_records_per_second: float | None = None
    kinesis_calls_per_second: float = 1.0

    def __post_init__(self) -> None:
        for name in ("read_records_per_second", "write_records_per_second"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigurationError(f"{name} must be a positive number")
        if not 0 < self.kinesis_calls_per_second <= 5:
            raise ConfigurationError("kinesis_calls_per_second must be in (0, 5]")


@dataclass(frozen=True, slots=True)
class Manifest:
    """Everything a slice runner needs, and the hash that binds it to its checkpoint namespace."""

    name: str
    source: str
    sink: str
    checkpoint: str
    slices: tuple[Slice, ...]
    dead_letter: str | None = None
    transform: str | None = None
    caps: RateCaps = field(default_factory=RateCaps)
    lease_seconds: float = 30.0
    concurrency: int = 4
    bounds: dict[str, Any] = field(default_factory=dict)
    version: int = MANIFEST_VERSION

    @property
    def namespace(self) -> str:
        """The job's checkpoint namespace (one per job name)."""
        return f"replay-{self.name}"

    @property
    def hash(self) -> str:
        return content_hash(self)

    def slice(self, index: int) -> Slice:
        if not 0 <= index < len(self.slices):
            raise ConfigurationError(
                f"slice {index} is not in the manifest (it has slices 0..{len(self.slices) - 1})"
            )
        return self.slices[index]


def _body(manifest: Manifest) -> dict[str, Any]:
    body = asdict(manifest)
    for piece in body["slices"]:
        piece["units"] = [{k: v for k, v in unit.items() if v is not None} for unit in piece["units"]]
    return body


def content_hash(manifest: Manifest) -> str:
    """SHA-256 over the canonical JSON of the whole manifest (sorted keys, no whitespace)."""
    canonical = json.dumps(_body(manifest), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def manifest_to_json(manifest: Manifest) -> str:
    return json.dumps({**_body(manifest), "hash": content_hash(manifest)}, indent=2, sort_keys=True) + "\n"


def manifest_from_json(text: str | bytes) -> Manifest:
    """Parse a manifest and check its hash; a malformed or edited manifest is refused."""
    try:
        data = json.loads(text)
        if data.get("version") != MANIFEST_VERSION:
            raise ConfigurationError(f"unsupported manifest version {data.get('version')!r}")
        stated = data.pop("hash")
        slices = tuple(
            Slice(piece["index"], tuple(Unit(**unit) for unit in piece["units"]))
            for piece in data.pop("slices")
        )
        caps = RateCaps(**data.pop("caps"))
        manifest = Manifest(slices=slices, caps=caps, **data)
    except ConfigurationError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"not a replay manifest: {type(exc).__name__}") from exc
    if [piece.index for piece in manifest.slices] != list(range(len(manifest.slices))):
        raise ConfigurationError("manifest slices must be numbered 0..N-1 in order")
    if content_hash(manifest) != stated:
        raise ConfigurationError("the manifest was changed after it was planned (its hash does not match)")
    return manifest


def s3_location(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of an ``s3://BUCKET/KEY`` manifest location."""
    parts = urlsplit(uri)
    key = parts.path.lstrip("/")
    if not parts.netloc or not key:
        raise ConfigurationError(f"a manifest in S3 is s3://BUCKET/KEY, got {uri!r}")
    return parts.netloc, key


async def load_manifest(source: str, *, s3: Any = None) -> Manifest:
    """Read and verify the manifest at a file path or ``s3://BUCKET/KEY``."""
    if source.startswith("s3://"):
        bucket, key = s3_location(source)

        async def fetch(client: Any) -> bytes:
            response = await client.get_object(Bucket=bucket, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
            return data

        return manifest_from_json(await with_s3_client(s3, fetch))
    try:
        text = Path(source).read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read manifest {source!r}: {exc.strerror}") from exc
    return manifest_from_json(text)


async def with_s3_client(client: Any, operation: Any) -> Any:
    """Run ``operation(client)``, building an S3 client from the standard configuration if none is given."""
    if client is not None:
        return await operation(client)
    from shardline.clients import aiobotocore_client

    async with aiobotocore_client("s3") as built:
        return await operation(built)
