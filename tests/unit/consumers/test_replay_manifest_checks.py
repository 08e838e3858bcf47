"""A manifest's hash is plain SHA-256 that anyone can recompute: every value in it is checked.

Each crafted manifest below carries a correct hash over its edited content, so only the checks
of what the values mean can refuse it.  Before those checks these manifests hung a runner
(``concurrency: 0``), failed it with a traceback, read objects outside the planned prefix, or
made ``status`` wrong for ever.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from consumers.replay.jobs_cli import build_parser, main
from consumers.replay.manifest import Manifest, Slice, Unit, manifest_from_json, manifest_to_json
from shardline.errors import ConfigurationError

Edit = Callable[[dict[str, Any]], None]


def _s3_manifest() -> Manifest:
    return Manifest(
        name="j",
        source="s3://b/p/",
        sink="file:///tmp/replay-checks.jsonl",
        checkpoint="dynamodb://t",
        slices=(
            Slice(0, (Unit("s0000-u00000", "s3", 10, bucket="b", key="p/a"),)),
            Slice(1, (Unit("s0001-u00000", "s3", 20, bucket="b", key="p/b"),)),
        ),
    )


def _kinesis_manifest() -> Manifest:
    unit = Unit(
        "s0000-u00000",
        "kinesis",
        1000,
        stream="s",
        shard="shardId-000000000000",
        start_time="2024-05-01T00:00:00+00:00",
        end_time="2024-05-01T00:00:01+00:00",
        start_sequence="4960",
    )
    return Manifest(
        name="j",
        source="kinesis://s",
        sink="file:///tmp/x.jsonl",
        checkpoint="dynamodb://t",
        slices=(Slice(0, (unit,)),),
    )


def _kafka_manifest() -> Manifest:
    unit = Unit("s0000-u00000", "kafka", 100, topic="t", partition=0, start_offset=0, end_offset=100)
    return Manifest(
        name="j",
        source="kafka://127.0.0.1:9092/t",
        sink="file:///tmp/x.jsonl",
        checkpoint="dynamodb://t",
        slices=(Slice(0, (unit,)),),
    )


def _crafted(manifest: Manifest, edit: Edit) -> str:
    """The manifest's JSON after ``edit``, with its hash recomputed as anyone could."""
    document = json.loads(manifest_to_json(manifest))
    document.pop("hash")
    edit(document)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    document["hash"] = hashlib.sha256(canonical.encode()).hexdigest()
    return json.dumps(document)


def _unit(document: dict[str, Any], slice_index: int = 0) -> dict[str, Any]:
    unit: dict[str, Any] = document["slices"][slice_index]["units"][0]
    return unit


def test_the_crafted_manifests_are_well_formed_apart_from_the_edit() -> None:
    for manifest in (_s3_manifest(), _kinesis_manifest(), _kafka_manifest()):
        assert manifest_from_json(_crafted(manifest, lambda document: None)) == manifest


S3_EDITS: list[tuple[str, Edit, str]] = [
    ("concurrency 0", lambda d: d.update(concurrency=0), "concurrency"),
    ("concurrency -1", lambda d: d.update(concurrency=-1), "concurrency"),
    ("concurrency 1.5", lambda d: d.update(concurrency=1.5), "concurrency"),
    ("lease text", lambda d: d.update(lease_seconds="x"), "lease_seconds"),
    ("lease negative", lambda d: d.update(lease_seconds=-1), "lease_seconds"),
    ("lease NaN", lambda d: d.update(lease_seconds=float("nan")), "lease_seconds"),
    ("lease true", lambda d: d.update(lease_seconds=True), "lease_seconds"),
    ("kind foo", lambda d: _unit(d).update(kind="foo"), r"units\[0\]\.kind"),
    ("no bucket", lambda d: _unit(d).pop("bucket"), r"units\[0\]\.bucket"),
    ("other bucket", lambda d: _unit(d).update(bucket="other"), r"units\[0\]\.bucket"),
    ("key outside the prefix", lambda d: _unit(d).update(key="secret/x"), r"units\[0\]\.key"),
    ("weight text", lambda d: _unit(d).update(weight="abc"), r"units\[0\]\.weight"),
    ("weight negative", lambda d: _unit(d).update(weight=-5), r"units\[0\]\.weight"),
    ("unit named job", lambda d: _unit(d).update(name="job"), r"units\[0\]\.name"),
    ("unit named like a slice row", lambda d: _unit(d).update(name="slice-0001"), r"units\[0\]\.name"),
    ("a name shared by two slices", lambda d: _unit(d, 1).update(name="s0000-u00000"), r"slices\[1\].*name"),
    ("a stray kinesis field", lambda d: _unit(d).update(stream="s"), "another kind"),
    ("no slices", lambda d: d.update(slices=[]), "at least one slice"),
    ("a slice without units", lambda d: d["slices"][1].update(units=[]), r"slices\[1\]\.units"),
    ("index 0.0", lambda d: d["slices"][0].update(index=0.0), r"slices\[0\]\.index"),
    ("job name with a slash", lambda d: d.update(name="a b/c"), "job name"),
    ("job name not text", lambda d: d.update(name=["x"]), "name"),
    ("checkpoint not shared", lambda d: d.update(checkpoint="sqlite:///x.db"), "checkpoint"),
    ("cap as text", lambda d: d["caps"].update(read_records_per_second="5"), "read_records_per_second"),
    ("cap infinite", lambda d: d["caps"].update(write_records_per_second=float("inf")), "write_records"),
    ("unknown field", lambda d: d.update(extra=1), "unknown fields: extra"),
    ("unknown unit field", lambda d: _unit(d).update(size=1), "unknown fields: size"),
    ("bounds not an object", lambda d: d.update(bounds=[1]), "bounds"),
    ("version true", lambda d: d.update(version=True), "version"),
]


@pytest.mark.parametrize(
    ("edit", "field"), [(edit, field) for _, edit, field in S3_EDITS], ids=[label for label, _, _ in S3_EDITS]
)
def test_a_crafted_archive_manifest_is_refused_naming_the_field(edit: Edit, field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        manifest_from_json(_crafted(_s3_manifest(), edit))


KINESIS_EDITS: list[tuple[str, Edit, str]] = [
    ("other stream", lambda d: _unit(d).update(stream="other"), "stream"),
    ("no shard", lambda d: _unit(d).pop("shard"), "shard"),
    ("no end", lambda d: _unit(d).pop("end_time"), "end_time"),
    ("end before start", lambda d: _unit(d).update(end_time="2024-04-30T00:00:00+00:00"), "end_time"),
    ("time not a time", lambda d: _unit(d).update(start_time="yesterday"), "start_time"),
    ("time without zone", lambda d: _unit(d).update(start_time="2024-05-01T00:00:00"), "start_time"),
    ("sequence not decimal", lambda d: _unit(d).update(start_sequence="49x"), "start_sequence"),
]


@pytest.mark.parametrize(
    ("edit", "field"),
    [(edit, field) for _, edit, field in KINESIS_EDITS],
    ids=[label for label, _, _ in KINESIS_EDITS],
)
def test_a_crafted_kinesis_manifest_is_refused_naming_the_field(edit: Edit, field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        manifest_from_json(_crafted(_kinesis_manifest(), edit))


KAFKA_EDITS: list[tuple[str, Edit, str]] = [
    ("other topic", lambda d: _unit(d).update(topic="other"), "topic"),
    ("negative partition", lambda d: _unit(d).update(partition=-1), "partition"),
    ("start after end", lambda d: _unit(d).update(start_offset=200), "start_offset"),
    ("negative start", lambda d: _unit(d).update(start_offset=-1), "start_offset"),
    ("end beyond 64 bits", lambda d: _unit(d).update(end_offset=10**30), "end_offset"),
]


@pytest.mark.parametrize(
    ("edit", "field"),
    [(edit, field) for _, edit, field in KAFKA_EDITS],
    ids=[label for label, _, _ in KAFKA_EDITS],
)
def test_a_crafted_kafka_manifest_is_refused_naming_the_field(edit: Edit, field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        manifest_from_json(_crafted(_kafka_manifest(), edit))


def _cli(action: str, manifest: Path, *extra: str) -> int:
    return main(
        action, build_parser("shardline replay", action).parse_args(["--manifest", str(manifest), *extra])
    )


@pytest.mark.parametrize(
    ("action", "extra", "edit"),
    [
        ("run", ("--slice", "0"), lambda d: d.update(concurrency=0)),  # hung in the reader before
        ("run", ("--slice", "0"), lambda d: _unit(d).update(kind="foo")),  # an AssertionError before
        ("status", (), lambda d: _unit(d).update(weight="abc")),  # a TypeError before
        ("status", (), lambda d: d.update(slices=[])),  # "pending" for ever before
    ],
)
def test_the_commands_refuse_a_crafted_manifest_in_one_line_with_status_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    extra: tuple[str, ...],
    edit: Edit,
) -> None:
    for variable in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")  # a call, were one made, fails at once
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    path = tmp_path / "plan.json"
    path.write_text(_crafted(_s3_manifest(), edit))
    assert _cli(action, path, *extra) == 2  # refused before any client is built: no endpoint here
    err = capsys.readouterr().err
    assert err.startswith("shardline replay: ConfigurationError: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    "content", [b"\xff\xfe\x00binary", b"[" * 100_000, b"null"], ids=["not utf-8", "nested", "null"]
)
def test_a_manifest_that_is_not_one_is_a_configuration_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(content)
    assert _cli("status", path) == 2
    assert "ConfigurationError: not a replay manifest" in capsys.readouterr().err


def _second_unit(document: dict[str, Any], **changes: Any) -> None:
    """Add a second slice whose one unit is the first unit with ``changes`` (and its own name)."""
    unit = {**_unit(document), "name": "s0001-u00000", **changes}
    unit = {field: value for field, value in unit.items() if value is not None}  # None: absent
    document["slices"].append({"index": 1, "units": [unit]})


OVERLAPS: list[tuple[str, Callable[[], Manifest], Edit]] = [
    ("same object twice", _s3_manifest, lambda d: _unit(d, 1).update(key="p/a")),
    ("same offsets", _kafka_manifest, lambda d: _second_unit(d)),
    ("offsets overlapping", _kafka_manifest, lambda d: _second_unit(d, start_offset=99, end_offset=150)),
    ("offsets inside", _kafka_manifest, lambda d: _second_unit(d, start_offset=10, end_offset=20)),
    ("same window", _kinesis_manifest, lambda d: _second_unit(d)),
    (
        "window overlapping",
        _kinesis_manifest,
        lambda d: _second_unit(
            d, start_time="2024-05-01T00:00:00.500000+00:00", end_time="2024-05-01T00:00:02+00:00"
        ),
    ),
    (
        "window from the start of the shard",
        _kinesis_manifest,
        lambda d: _second_unit(d, start_time=None, start_sequence=None),
    ),
]


@pytest.mark.parametrize(
    ("planned", "edit"),
    [(planned, edit) for _, planned, edit in OVERLAPS],
    ids=[label for label, _, _ in OVERLAPS],
)
def test_units_over_the_same_records_are_refused(planned: Callable[[], Manifest], edit: Edit) -> None:
    """Each unit has its own lease: two over one range were run at once, every record twice."""
    with pytest.raises(ConfigurationError, match=r"slices\[\d\]\.units\[0\] covers records another unit"):
        manifest_from_json(_crafted(planned(), edit))


ADJACENT: list[tuple[str, Callable[[], Manifest], Edit]] = [
    ("next offsets", _kafka_manifest, lambda d: _second_unit(d, start_offset=100, end_offset=200)),
    ("other partition", _kafka_manifest, lambda d: _second_unit(d, partition=1)),
    (
        "empty range at the same offset",
        _kafka_manifest,
        lambda d: _second_unit(d, start_offset=50, end_offset=50),
    ),
    (
        "next window",
        _kinesis_manifest,
        lambda d: _second_unit(
            d,
            start_time="2024-05-01T00:00:01+00:00",
            end_time="2024-05-01T00:00:02+00:00",
            start_sequence=None,
        ),
    ),
    ("other shard", _kinesis_manifest, lambda d: _second_unit(d, shard="shardId-000000000001")),
]


@pytest.mark.parametrize(
    ("planned", "edit"),
    [(planned, edit) for _, planned, edit in ADJACENT],
    ids=[label for label, _, _ in ADJACENT],
)
def test_units_that_meet_without_overlapping_are_accepted(
    planned: Callable[[], Manifest], edit: Edit
) -> None:
    manifest = manifest_from_json(_crafted(planned(), edit))
    assert len(manifest.slices) == 2
