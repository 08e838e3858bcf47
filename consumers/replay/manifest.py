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
import itertools
import json
import math
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeGuard
from urllib.parse import unquote, urlsplit

from consumers.replay.ledger import JOB_KEY, SLICE_PREFIX
from shardline.errors import ConfigurationError, ShardlineError
from shardline.validation import is_decimal

__all__ = [
    "MANIFEST_VERSION",
    "MAX_LEASE_SECONDS",
    "MAX_MANIFEST_BYTES",
    "MIN_LEASE_SECONDS",
    "Manifest",
    "RateCaps",
    "Slice",
    "Unit",
    "check_job_name",
    "content_hash",
    "load_manifest",
    "manifest_from_json",
    "manifest_to_json",
    "s3_location",
    "with_s3_client",
]

MANIFEST_VERSION = 1

# A manifest is read whole into memory on every runner: one from a shared bucket or a hand-made
# file could be any size, so its length is checked before it is read (and before it is parsed,
# which takes several times its size).  A million archive objects plan to about 200 MiB.
MAX_MANIFEST_BYTES = 256 * 1024 * 1024

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
            if value is not None and not (_is_number(value) and value > 0):
                raise ConfigurationError(f"{name} must be a positive number")
        calls = self.kinesis_calls_per_second
        if not (_is_number(calls) and 0 < calls <= 5):
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

    def __post_init__(self) -> None:
        # The hash proves only that the text was not edited after it was written, and anyone
        # can recompute it: every value a runner or ``status`` acts on is checked here.
        _check_settings(self)
        _check_slices(self)

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
    """Parse a manifest and check its hash and every value; a malformed or edited manifest is refused.

    Anything that goes wrong while reading untrusted text is a :class:`ConfigurationError`
    (one line, exit status 2 in the commands), never a traceback.
    """
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ConfigurationError("not a replay manifest: not a JSON object")
        version = data.get("version")
        if not _is_int(version) or version != MANIFEST_VERSION:
            raise ConfigurationError(f"unsupported manifest version {str(version)[:20]!r}")
        stated = data.pop("hash", None)
        if not isinstance(stated, str):
            raise ConfigurationError("not a replay manifest: no hash")
        pieces = _list(data.pop("slices", None), "slices")
        slices = tuple(_slice(piece, position) for position, piece in enumerate(pieces))
        caps = RateCaps(**_fields_of(RateCaps, data.pop("caps", {}), "caps"))
        manifest = Manifest(slices=slices, caps=caps, **_fields_of(Manifest, data, "object"))
    except ShardlineError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise ConfigurationError(f"not a replay manifest: {type(exc).__name__}") from exc
    if content_hash(manifest) != stated:
        raise ConfigurationError("the manifest was changed after it was planned (its hash does not match)")
    return manifest


def _slice(piece: Any, position: int) -> Slice:
    where = f"slices[{position}]"
    if not isinstance(piece, dict) or set(piece) != {"index", "units"}:
        raise ConfigurationError(f"manifest {where} must be an object with index and units")
    units = _list(piece["units"], f"{where}.units")
    return Slice(
        piece["index"],
        tuple(Unit(**_fields_of(Unit, unit, f"{where}.units[{i}]")) for i, unit in enumerate(units)),
    )


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigurationError(f"manifest {where} must be a list")
    return value


def _fields_of(cls: Any, value: Any, where: str) -> dict[str, Any]:
    """``value`` as keyword arguments of dataclass ``cls``: an unknown field is named, not a TypeError."""
    if not isinstance(value, dict):
        raise ConfigurationError(f"manifest {where} must be an object")
    known = {item.name for item in fields(cls)}
    unknown = sorted(str(name)[:40] for name in value if name not in known)
    if unknown:
        raise ConfigurationError(f"manifest {where} has unknown fields: {', '.join(unknown)}")
    return value


def s3_location(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of an ``s3://BUCKET/KEY`` manifest location."""
    parts = urlsplit(uri)
    key = parts.path.lstrip("/")
    if not parts.netloc or not key:
        raise ConfigurationError(f"a manifest in S3 is s3://BUCKET/KEY, got {uri!r}")
    return parts.netloc, key


async def load_manifest(source: str, *, s3: Any = None) -> Manifest:
    """Read and verify the manifest at a file path or ``s3://BUCKET/KEY``.

    At most :data:`MAX_MANIFEST_BYTES` are read: a larger one is refused before it fills memory.
    """
    if source.startswith("s3://"):
        bucket, key = s3_location(source)

        async def fetch(client: Any) -> bytes:
            response = await client.get_object(Bucket=bucket, Key=key)
            async with response["Body"] as body:
                length = response.get("ContentLength")
                if _is_int(length) and length > MAX_MANIFEST_BYTES:
                    _too_large()
                return await _read_bounded(body)

        return manifest_from_json(await with_s3_client(s3, fetch))
    try:
        with Path(source).open("rb") as file:
            text = file.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot read manifest {source!r}: {exc.strerror}") from exc
    if len(text) > MAX_MANIFEST_BYTES:
        _too_large()
    return manifest_from_json(text)


async def _read_bounded(body: Any) -> bytes:
    """The body's bytes, refused once more than :data:`MAX_MANIFEST_BYTES` arrived."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await body.read(1024 * 1024):
        size += len(chunk)
        if size > MAX_MANIFEST_BYTES:
            _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> NoReturn:
    raise ConfigurationError(f"not a replay manifest: larger than {MAX_MANIFEST_BYTES} bytes")


async def with_s3_client(client: Any, operation: Any) -> Any:
    """Run ``operation(client)``, building an S3 client from the standard configuration if none is given."""
    if client is not None:
        return await operation(client)
    from shardline.clients import aiobotocore_client

    async with aiobotocore_client("s3") as built:
        return await operation(built)


# --- what a manifest may say ----------------------------------------------------------------

MIN_LEASE_SECONDS = 3.0
MAX_LEASE_SECONDS = 86_400.0
_MAX_OFFSET = 2**63 - 1  # Kafka offsets are signed 64-bit
_MAX_UNIT_NAME = 256  # a lease key is a shard id (consumers.checkpoint.base.validate_shard_id)
_KIND_FIELDS = {
    "s3": ("bucket", "key"),
    "kinesis": ("stream", "shard", "start_time", "end_time", "start_sequence"),
    "kafka": ("topic", "partition", "start_offset", "end_offset"),
}


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    """A finite int or float (``bool`` is not a number here, NaN and infinity are not either)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _refuse(where: str, rule: str) -> NoReturn:
    raise ConfigurationError(f"manifest {where} {rule}")


def check_job_name(name: object, checkpoint: object) -> None:
    """Refuse a job name whose namespace or table ``TABLE-replay-NAME`` cannot exist.

    ``plan`` calls this before it lists the source, so a name every runner would refuse is
    never written into a manifest.
    """
    from consumers.checkpoint.dynamodb import table_name_for

    if not _is_text(checkpoint) or not str(checkpoint).startswith("dynamodb://"):
        _refuse("checkpoint", "must be a shared store: dynamodb://TABLE")
    if not _is_text(name):
        _refuse("name", "must be a job name")
    table = unquote(urlsplit(str(checkpoint)).netloc)
    try:
        table_name_for(table, f"replay-{name}")
    except ShardlineError as exc:
        raise ConfigurationError(
            f"job name {str(name)[:60]!r} is refused: {exc} (its table would be {table[:60]}-replay-NAME)"
        ) from exc


def _check_lease_seconds(value: object) -> None:
    """Refuse a lease a runner could not renew (renewals come every third of it) or never expires."""
    if not (_is_number(value) and MIN_LEASE_SECONDS <= value <= MAX_LEASE_SECONDS):
        _refuse(
            "lease_seconds",
            f"must be a number of seconds from {MIN_LEASE_SECONDS:g} to {MAX_LEASE_SECONDS:g}",
        )


def _check_settings(manifest: Manifest) -> None:
    """The job-wide values: a runner acts on each of them before it reads anything."""
    if not _is_int(manifest.version) or manifest.version != MANIFEST_VERSION:
        _refuse("version", f"must be {MANIFEST_VERSION}")
    check_job_name(manifest.name, manifest.checkpoint)
    for name in ("source", "sink"):
        if not _is_text(getattr(manifest, name)):
            _refuse(name, "must be a URI")
    for name in ("dead_letter", "transform"):
        value = getattr(manifest, name)
        if value is not None and not _is_text(value):
            _refuse(name, "must be text or absent")
    if not isinstance(manifest.caps, RateCaps):
        _refuse("caps", "must be the job's rate caps")
    _check_lease_seconds(manifest.lease_seconds)
    if not (_is_int(manifest.concurrency) and manifest.concurrency >= 1):
        _refuse("concurrency", "must be a whole number of units, at least 1")
    if not isinstance(manifest.bounds, dict):
        _refuse("bounds", "must be an object")
    _source_parts(manifest.source)


def _source_parts(source: str) -> tuple[str, str, str]:
    """``(kind, location, path)`` of the planned source: what every unit must lie within."""
    parts = urlsplit(source)
    if parts.scheme in _KIND_FIELDS and parts.netloc:
        path = parts.path.lstrip("/") if parts.scheme == "s3" else parts.path.strip("/")
        return parts.scheme, parts.netloc, path
    _refuse("source", "must be kinesis://STREAM, kafka://BOOTSTRAP/TOPIC or s3://BUCKET/PREFIX")


def _check_slices(manifest: Manifest) -> None:
    """At least one slice, numbered 0..N-1, each with units; unit names unique and not the ledger's."""
    if not isinstance(manifest.slices, tuple) or not manifest.slices:
        _refuse("slices", "must hold at least one slice")
    kind, location, path = _source_parts(manifest.source)
    seen: set[str] = set()
    spans: dict[object, list[tuple[Any, Any, str]]] = {}
    for position, piece in enumerate(manifest.slices):
        where = f"slices[{position}]"
        if not isinstance(piece, Slice) or not _is_int(piece.index) or piece.index != position:
            _refuse(f"{where}.index", "must number the slices 0..N-1 in order")
        if not isinstance(piece.units, tuple) or not piece.units:
            _refuse(f"{where}.units", "must hold at least one unit")
        for number, unit in enumerate(piece.units):
            at = f"{where}.units[{number}]"
            if not isinstance(unit, Unit):
                _refuse(at, "must be a unit")
            _check_name(unit.name, at, seen)
            _check_unit(unit, at, kind, location, path)
            _note_span(unit, at, spans)
    _check_disjoint(spans)


_DAWN = datetime.min.replace(tzinfo=UTC)


def _note_span(unit: Unit, where: str, spans: dict[object, list[tuple[Any, Any, str]]]) -> None:
    """Record which records of the source ``unit`` (already checked) covers."""
    if unit.kind == "s3":
        spans.setdefault(unit.key, []).append((0, 1, where))
    elif unit.kind == "kafka":
        if unit.start_offset != unit.end_offset:  # an empty range covers nothing
            spans.setdefault(unit.partition, []).append((unit.start_offset, unit.end_offset, where))
    else:
        start = _aware_time(unit.start_time, where) or _DAWN
        spans.setdefault(unit.shard, []).append((start, _aware_time(unit.end_time, where), where))


def _check_disjoint(spans: dict[object, list[tuple[Any, Any, str]]]) -> None:
    """No two units cover the same records: each unit has a lease and checkpoint of its own, so
    two over one range are run at once by two runners, every record read and written twice."""
    for ranges in spans.values():
        ranges.sort(key=lambda span: (span[0], span[1]))
        for (_, end, _), (start, _, where) in itertools.pairwise(ranges):
            if start < end:
                _refuse(where, "covers records another unit covers too (units must not overlap)")


def _check_name(name: object, where: str, seen: set[str]) -> None:
    """A unit's name is its lease key: two units sharing one would share one checkpoint."""
    if not _is_text(name) or len(str(name)) > _MAX_UNIT_NAME:
        _refuse(f"{where}.name", f"must be 1-{_MAX_UNIT_NAME} characters")
    text = str(name)
    if text == JOB_KEY or text.startswith(SLICE_PREFIX):
        _refuse(
            f"{where}.name",
            f"must not be {JOB_KEY!r} or start with {SLICE_PREFIX!r} (the job ledger's rows)",
        )
    if text in seen:
        _refuse(f"{where}.name", f"{text[:60]!r} names another unit too (one lease per unit)")
    seen.add(text)


def _check_unit(unit: Unit, where: str, kind: str, location: str, path: str) -> None:
    """The unit's kind is the source's, its own fields are set and lie within the planned source."""
    if unit.kind != kind:
        _refuse(f"{where}.kind", f"must be {kind!r}, the kind of the manifest's source")
    if not (_is_int(unit.weight) and unit.weight >= 0):
        _refuse(f"{where}.weight", "must be a whole number, at least 0")
    others = [name for fields_ in _KIND_FIELDS.values() for name in fields_ if name not in _KIND_FIELDS[kind]]
    stray = [name for name in others if getattr(unit, name) is not None]
    if stray:
        _refuse(where, f"has fields of another kind of unit: {', '.join(stray)}")
    {"s3": _check_s3_unit, "kinesis": _check_kinesis_unit, "kafka": _check_kafka_unit}[kind](
        unit, where, location, path
    )


def _check_s3_unit(unit: Unit, where: str, bucket: str, prefix: str) -> None:
    """One object of the planned archive: its bucket, a key under its prefix."""
    if unit.bucket != bucket:
        _refuse(f"{where}.bucket", f"must be the source's bucket {bucket!r}")
    if not _is_text(unit.key) or not str(unit.key).startswith(prefix):
        _refuse(f"{where}.key", f"must be an object key under the planned prefix {prefix!r}")


def _check_kinesis_unit(unit: Unit, where: str, stream: str, _path: str) -> None:
    """One shard of the planned stream over a window that ends after it starts."""
    if unit.stream != stream:
        _refuse(f"{where}.stream", f"must be the source's stream {stream!r}")
    if not _is_text(unit.shard):
        _refuse(f"{where}.shard", "must be a shard id")
    end = _aware_time(unit.end_time, f"{where}.end_time")
    if end is None:
        _refuse(f"{where}.end_time", "must be set: a window has an end")
    start = _aware_time(unit.start_time, f"{where}.start_time")
    if start is not None and end <= start:
        _refuse(f"{where}.end_time", "must be after start_time")
    sequence = unit.start_sequence
    if sequence is not None and not is_decimal(sequence):
        _refuse(f"{where}.start_sequence", "must be a decimal sequence number")


def _aware_time(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        _refuse(where, "must be an ISO-8601 time with a time zone")
    return moment


def _check_kafka_unit(unit: Unit, where: str, _bootstrap: str, topic: str) -> None:
    """One partition of the planned topic over offsets 0 <= start <= end < 2**63."""
    if unit.topic != topic:
        _refuse(f"{where}.topic", f"must be the source's topic {topic!r}")
    if not (_is_int(unit.partition) and 0 <= unit.partition <= 2**31 - 1):
        _refuse(f"{where}.partition", "must be a partition number, at least 0")
    start, end = unit.start_offset, unit.end_offset
    if not (_is_int(start) and _is_int(end) and 0 <= start <= end <= _MAX_OFFSET):
        _refuse(
            f"{where}.start_offset", "and end_offset must be offsets with 0 <= start_offset <= end_offset"
        )
