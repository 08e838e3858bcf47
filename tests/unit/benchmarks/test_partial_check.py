"""Partials are input: `stream-bench merge` refuses a wrong or crafted one, named, in bounded time."""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hdrh.codec import ExternalHeader, PayloadHeader, ext_header_size, payload_header_size

import benchmarks.merge as merge
import benchmarks.partial_check as partial_check
from benchmarks.environment import environment
from benchmarks.histogram import LatencyHistogram
from benchmarks.merge import merge_partials, partial_from_outcome, read_partials
from benchmarks.report import render_html
from benchmarks.result import build_result, validate_result
from benchmarks.spacesaving import StreamSummary
from shardline.errors import ConfigurationError
from tests.unit.benchmarks.test_report_fidelity import _outcome

Edit = Callable[[list[dict[str, Any]]], None]


def _parts() -> list[dict[str, Any]]:
    parts = [partial_from_outcome(_outcome(worker, 2)) for worker in range(2)]
    loaded: list[dict[str, Any]] = json.loads(json.dumps(parts))
    return loaded


def _write(directory: Path, parts: list[Any]) -> None:
    for worker, part in enumerate(parts):
        (directory / f"partial-{worker:04d}-of-0002.json").write_text(json.dumps(part))


def _recoded(text: str, edit: Callable[[Any, bytes], tuple[Any, bytes]]) -> str:
    """An encoded histogram with its payload header and counters edited, then re-framed."""
    raw = base64.b64decode(text)
    payload = zlib.decompress(raw[ext_header_size:])
    header, counters = edit(PayloadHeader.from_buffer_copy(payload), payload[payload_header_size:])
    header.payload_len = len(counters)
    compressed = zlib.compress(bytes(header) + counters)
    outer = ExternalHeader.from_buffer_copy(raw)
    outer.length = len(compressed)
    return base64.b64encode(bytes(outer) + compressed).decode()


def _other_range(header: Any, counters: bytes) -> tuple[Any, bytes]:
    header.significant_figures = 5
    header.highest_trackable_value = 2**62
    return header, counters


def _overrun(header: Any, counters: bytes) -> tuple[Any, bytes]:
    return header, b"\xff" * 40 + b"\x7f" + counters  # a zero run far past the counters


def _bomb() -> str:
    """A well-framed histogram whose payload inflates to 64 MiB."""
    compressed = zlib.compress(b"\0" * (64 * 1024 * 1024))
    outer = ExternalHeader()
    outer.cookie = 0x1C849304 | 0x10
    outer.length = len(compressed)
    return base64.b64encode(bytes(outer) + compressed).decode()


def _set(path: str, value: Any) -> Edit:
    def edit(parts: list[dict[str, Any]]) -> None:
        *parents, last = path.split("/")
        target: Any = parts[1]
        for name in parents:
            target = target[name]
        target[last] = value

    return edit


def _every(name: str, value: Any) -> Edit:
    def edit(parts: list[dict[str, Any]]) -> None:
        for part in parts:
            part[name] = value

    return edit


def _drop(name: str) -> Edit:
    def edit(parts: list[dict[str, Any]]) -> None:
        del parts[1][name]

    return edit


def _summary_over_capacity(parts: list[dict[str, Any]]) -> None:
    shard = next(iter(parts[1]["recorder"]["load"].values()))
    shard["keys"] = {
        "exact_limit": 10,
        "capacity": 2,
        "total": 3,
        "summary": {
            "capacity": 2,
            "total": 3,
            "evictions": 0,
            "counters": [["a", 1, 0], ["b", 1, 0], ["c", 1, 0]],
        },
    }


def _summary_key_twice(parts: list[dict[str, Any]]) -> None:
    _summary_over_capacity(parts)
    shard = next(iter(parts[1]["recorder"]["load"].values()))
    shard["keys"]["summary"]["counters"] = [["a", 1, 0], ["a", 2, 0]]


def _histogram(edit: Callable[[Any, bytes], tuple[Any, bytes]]) -> Edit:
    def apply(parts: list[dict[str, Any]]) -> None:
        histogram = parts[1]["recorder"]["ack_latency"]
        histogram["hdr"] = _recoded(histogram["hdr"], edit)

    return apply


def _both(path: str, value: Any) -> Edit:
    """The same setting in every part: past the comparison, to what makes a run's settings."""

    def edit(parts: list[dict[str, Any]]) -> None:
        for part in parts:
            *parents, last = path.split("/")
            target: Any = part
            for name in parents:
                target = target[name]
            target[last] = value

    return edit


def _drop_option(name: str) -> Edit:
    def edit(parts: list[dict[str, Any]]) -> None:
        del parts[1]["options"][name]

    return edit


def _claim_shard_of_worker_0(parts: list[dict[str, Any]]) -> None:
    parts[1]["shard_ids"].append(parts[0]["shard_ids"][0])


def _foreign_shard(name: str) -> Edit:
    """A per-shard series copied under a shard the partial does not own."""

    def edit(parts: list[dict[str, Any]]) -> None:
        table = parts[1]["recorder"][name]
        table["ghost"] = copy.deepcopy(next(iter(table.values())))

    return edit


def _gateway_counts_for(shard_of: str) -> Edit:
    """Gateway counts in worker 1's partial for a shard of worker 0 (``other``) or of no worker."""

    def edit(parts: list[dict[str, Any]]) -> None:
        shard = parts[0]["shard_ids"][0] if shard_of == "other" else "shardId-000000000099"
        counts = dict(next(iter(parts[1]["gateway"].values())), accepted_bytes=10**15)
        parts[1]["gateway"][shard] = counts

    return edit


_ENVIRONMENT = environment("local emulator", "http://127.0.0.1:4567", "us-east-1")

CRAFTED: dict[str, tuple[Edit, str]] = {
    "a billion workers": (_every("workers", 10**9), "workers"),
    "a worker id past the count": (_set("worker_id", 2), "worker id 2 of 2"),
    "a worker id its options do not say": (_set("options/worker_id", 0), "options say worker 0 of 2"),
    "a second past the run": (_set("recorder/sent/999999", 5), "past the worker's run"),
    "a second as a huge number": (_set("recorder/sent/100000000000", 5), "recorder/sent"),
    "no recorder": (_drop("recorder"), "'recorder' is a required property"),
    "a count as a string": (_set("recorder/acked/0", "7"), "recorder/acked/0"),
    "a worker id as a string": (_set("worker_id", "1"), "worker_id"),
    "a start that is no time": (_set("started_at", "yesterday"), "ISO 8601"),
    "a start without its offset": (_set("started_at", "2026-01-01T00:00:00"), "UTC offset"),
    "a last ack past the run": (_set("recorder/last_ack_at", 10**9), "last_ack_at"),
    "a summary over its capacity": (_summary_over_capacity, "more counters than its capacity"),
    "a key counted twice": (_summary_key_twice, "a key twice"),
    "a histogram of another range": (_histogram(_other_range), "another range or precision"),
    "a histogram whose counters overrun": (_histogram(_overrun), "counters do not decode"),
    "a histogram that inflates to 64 MiB": (_set("recorder/e2e_latency/hdr", _bomb()), "larger than"),
    "a histogram that is no base64": (_set("recorder/e2e_latency/hdr", "not base64!"), "not base64"),
    "an unknown member": (_set("extra", 1), "additionalProperties"),
    "a load for a shard it does not own": (_foreign_shard("load"), "recorder/load names a shard"),
    "acks for a shard it does not own": (
        _foreign_shard("accepted_records"),
        "recorder/accepted_records names",
    ),
    # the merge unions gateway counts by shard: another worker's were replaced without a word
    "gateway counts for another worker's shard": (_gateway_counts_for("other"), "gateway names a shard"),
    "gateway counts for a shard of no worker": (_gateway_counts_for("none"), "gateway names a shard"),
    "an unknown option": (_set("options/evil", 1), "options: additionalProperties"),
    "an unknown workload option": (
        _set("options/workload/evil", 1),
        "options/workload: additionalProperties",
    ),
    "a duration as a string": (_set("options/workload/duration", "five"), "options/workload/duration"),
    "a duration of three years": (_set("options/workload/duration", 1e8), "options/workload/duration"),
    "a skew that is no skew": (_set("options/workload/skew", "bogus"), "options/workload/skew"),
    "a target as a list": (_set("options/target", ["kinesis"]), "options/target"),
    "no drain": (_drop_option("drain_seconds"), "'drain_seconds' is a required property"),
    "records too small to carry their header": (
        _both("options/workload/record_size", 1),
        "partial-0000-of-0002.json: options are not a run's settings (record_size must be",
    ),
    "more workers than shards": (_both("options/shards", 1), "--workers must not exceed --shards"),
    "a shard another worker owns": (_claim_shard_of_worker_0, "both list one shard as their own"),
    "a stream name that clears the screen": (_every("stream", "s\x1b[2J"), "at stream: pattern check failed"),
    "another run's rate": (_set("options/workload/rate", 5000.0), "differ in options/workload/rate"),
    "another run's consumer": (_set("options/consumer", "polling"), "differ in options/consumer"),
    "another run's id": (_set("options/run_id", "run-b"), "differ in options/run_id"),
    "a start after the run ended": (_set("started_at", "2026-01-01T00:05:04+00:00"), "304 s apart"),
    # report building read these as the bench writes them (a KeyError, a template error)
    "a gateway shard without its counts": (_set("gateway", {"shardId-000000000000": {}}), "gateway"),
    "a machine that is a number": (
        _set("environment", {**_ENVIRONMENT, "machine": 1}),
        "environment/machine",
    ),
    # each of these merged, then failed building or writing the report (a traceback, an
    # Infinity in result.json) after the reading had succeeded
    "an environment without the members the report shows": (
        _set("environment", {"where": "somewhere"}),
        "at environment: 'target_kind' is a required property",
    ),
    "a skew the result cannot state": (_both("options/workload/skew", "zipf:1e-05"), "zipf exponent"),
    "a skew of infinity": (_both("options/workload/skew", "zipf:1e999"), "zipf exponent"),
    "limits of a vanishing share": (_both("options/limits_percent", 1e-300), "limits percent"),
    "a worker count written as a float": (_every("workers", 2.0), "at workers: type check failed"),
    "a count written as a float": (_set("recorder/sent/0", 5.0), "at recorder/sent/0: type check failed"),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_partial_is_refused_with_its_file_named(case: str, tmp_path: Path) -> None:
    edit, says = CRAFTED[case]
    parts = _parts()
    edit(parts)
    _write(tmp_path, parts)
    with pytest.raises(ConfigurationError) as refused:
        merge_partials(read_partials(str(tmp_path)))
    message = str(refused.value)
    assert says in message
    if "worker id past" not in case:  # a set-level refusal: no one file is at fault
        assert "partial-0001-of-0002.json" in message or "partial-0000-of-0002.json" in message


def test_one_workers_partial_relabelled_as_the_whole_run_is_refused(tmp_path: Path) -> None:
    """The merge counts parts by the outer worker id and count, and reports the options': worker
    1 of 2 relabelled "0 of 1" merged as a complete run of 2 workers, half its shards missing."""
    part = _parts()[1]
    part["worker_id"], part["workers"] = 0, 1
    (tmp_path / "partial-0000-of-0001.json").write_text(json.dumps(part))
    with pytest.raises(
        ConfigurationError,
        match=r"partial-0000-of-0001\.json: worker id 0 of 1 workers, but its options say worker 1 of 2$",
    ):
        merge_partials(read_partials(str(tmp_path)))


def test_a_refusal_shows_the_files_member_names_escaped(tmp_path: Path) -> None:
    """A schema refusal names where in the file it is, member names included: they are the file's."""
    parts = _parts()
    shard = next(iter(parts[1]["recorder"]["load"].values()))
    shard["keys"]["exact_counts"] = {"\x1b]52;c;QUJD\x07\x1b[2J\u202ekey": "not a count"}
    _write(tmp_path, parts)
    with pytest.raises(ConfigurationError) as refused:
        read_partials(str(tmp_path))
    message = str(refused.value)
    assert "exact_counts/\\x1b]52;c;QUJD\\x07\\x1b[2J\\u202ekey: type check failed" in message
    assert not re.search("[\x00-\x1f\x7f-\x9f\u202e]", message)


def test_the_unedited_partials_merge(tmp_path: Path) -> None:
    _write(tmp_path, _parts())
    outcome = merge_partials(read_partials(str(tmp_path)))
    assert outcome.recorder.sent == {0: 1000, 1: 1000, 2: 1000}


def test_partials_that_say_where_they_ran_merge_into_a_report(tmp_path: Path) -> None:
    """What a worker writes passes the checks, and the report shows what it said."""
    parts = _parts()
    for part in parts:
        part["environment"] = _ENVIRONMENT
        part["notes"] = ["</p><script>alert(1)</script>"]
    _write(tmp_path, parts)
    result = build_result(merge_partials(read_partials(str(tmp_path))))
    validate_result(result)
    html = render_html(result)
    assert "127.0.0.1:4567 (local emulator)" in html
    assert "<script>" not in html and "&lt;/p&gt;&lt;script&gt;" in html


def test_the_report_shows_control_and_bidi_characters_of_partials_escaped(tmp_path: Path) -> None:
    """Autoescaping left an ESC or a right-to-left override in report.html as it was: a hot key
    shown reversed in a browser, a screen cleared or a clipboard written by ``cat``."""
    crafted = "dev\u202eice\x1b]52;c;QUJD\x07\x1b[2J"
    parts = _parts()
    for part in parts:
        part["environment"] = {**_ENVIRONMENT, "where": crafted}
        part["notes"] = [crafted]
        for shard in part["recorder"]["load"].values():
            shard["keys"]["exact_counts"] = {crafted: shard["keys"]["total"]}
    _write(tmp_path, parts)
    result = build_result(merge_partials(read_partials(str(tmp_path))))
    html = render_html(result)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", html)
    shown = "dev\\u202eice\\x1b]52;c;QUJD\\x07\\x1b[2J"
    assert html.count(shown) >= 3  # where it ran, the note, the hot key
    assert "<svg" in html and "<pre>{" in html  # the report's own markup is left as it is


def test_a_refusal_names_the_files_it_was_read_from() -> None:
    parts = _parts()
    parts[1]["options"]["shards"] = 8
    with pytest.raises(ConfigurationError, match=r"^w0\.json and w1\.json .* differ in options/shards$"):
        merge_partials(parts, ["w0.json", "w1.json"])


def test_parts_of_one_run_merge_whatever_each_worker_found(tmp_path: Path) -> None:
    """Only a worker's own id and whether it created the stream may differ; the run id must not."""
    parts = _parts()
    for part in parts:
        part["options"]["run_id"] = "run-a"
    parts[1]["options"]["new_stream"] = True
    parts[1]["started_at"] = "2026-01-01T00:05:03+00:00"  # the 3 s run's duration plus 300 s
    _write(tmp_path, parts)
    assert (
        merge_partials(read_partials(str(tmp_path))).recorder.sent[303] == parts[1]["recorder"]["sent"]["0"]
    )


def test_the_machines_of_an_aws_batch_array_share_its_job_id(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.cli import _run_options, build_parser

    argv = ["run", "--target", "kinesis", "--stream", "s", "--shards", "4", "--workers", "4", "--worker-id"]
    monkeypatch.setenv("AWS_BATCH_JOB_ID", "4f3a9c1e-77b2-4a0e-9a51-0c8e3d1b2a6f:3")
    assert (
        _run_options(build_parser().parse_args([*argv, "3"])).run_id == "4f3a9c1e-77b2-4a0e-9a51-0c8e3d1b2a6f"
    )
    monkeypatch.delenv("AWS_BATCH_JOB_ID")
    assert _run_options(build_parser().parse_args([*argv, "3"])).run_id is None


def test_each_partial_is_told_to_progress_as_it_is_read(tmp_path: Path) -> None:
    _write(tmp_path, _parts())
    told: list[str] = []
    read_partials(str(tmp_path), progress=told.append)
    assert [line.split(": ")[0] for line in told] == ["1 of 2", "2 of 2"]
    assert "partial-0000-of-0002.json" in told[0] and told[0].endswith(" bytes)")

    body = json.dumps(_parts()[0]).encode()
    bucket = _Bucket({"run/partial-0000-of-0002.json": (len(body), body)})
    told.clear()
    read_partials("s3://b/run/", s3_client=bucket, progress=told.append)
    assert told == [f"1 of 1: s3://b/run/partial-0000-of-0002.json ({len(body):,} bytes)"]


def test_a_file_that_is_not_json_or_too_large_is_refused_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "partial-0000-of-0001.json").write_bytes(b"\xff{not json")
    with pytest.raises(ConfigurationError, match=r"partial-0000-of-0001\.json: not JSON"):
        read_partials(str(tmp_path))
    (tmp_path / "partial-0000-of-0001.json").write_text(json.dumps(_parts()[0]))
    monkeypatch.setattr(merge, "MAX_PARTIAL_BYTES", 1000)
    with pytest.raises(ConfigurationError, match="larger than 1,000 bytes"):
        read_partials(str(tmp_path))


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("wall_seconds", "NaN"),
        ("client_cpu_seconds", "NaN"),
        ("interrupted_after", "NaN"),
        ("recorder/last_ack_at", "Infinity"),
        ("peak_rss_mib", "-Infinity"),
        ("process_cpu_seconds", "1e999"),
    ],
)
def test_a_number_that_is_not_finite_is_refused(path: str, text: str, tmp_path: Path) -> None:
    """Every schema bound is false for NaN: it must not get past the parse."""
    parts = _parts()
    _set(path, "NOT-FINITE")(parts)
    _write(tmp_path, parts)
    name = tmp_path / "partial-0001-of-0002.json"
    name.write_text(name.read_text().replace('"NOT-FINITE"', text))
    with pytest.raises(
        ConfigurationError, match=r"partial-0001-of-0002\.json: not JSON \(a number that is not finite\)"
    ):
        read_partials(str(tmp_path))


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("written", "says"),
    [
        (b"\\ud800", "a string that is not Unicode text"),
        (b"\\udfff", "a string that is not Unicode text"),
        (b"\\ude00\\ud83d", "a string that is not Unicode text"),  # a pair the wrong way round
        (b"x\\ud83d", "a string that is not Unicode text"),
        (b"\xed\xa0\x80", None),  # a surrogate encoded as bytes: not UTF-8 (json read it through)
    ],
)
def test_a_string_that_is_not_unicode_text_is_refused(
    written: bytes, says: str | None, tmp_path: Path
) -> None:
    """A lone surrogate passed every check and failed writing report.html."""
    parts = _parts()
    parts[1]["notes"] = ["NOT-TEXT"]
    _write(tmp_path, parts)
    name = tmp_path / "partial-0001-of-0002.json"
    name.write_bytes(name.read_bytes().replace(b"NOT-TEXT", written))
    why = r" \(" + re.escape(says) + r"\)" if says else "$"
    with pytest.raises(ConfigurationError, match=r"partial-0001-of-0002\.json: not JSON" + why):
        read_partials(str(tmp_path))


def test_a_surrogate_pair_is_text(tmp_path: Path) -> None:
    parts = _parts()
    parts[1]["notes"] = ["ran on \U0001f600"]
    _write(tmp_path, parts)  # json.dumps writes the pair as two escapes
    assert "\\ud83d\\ude00" in (tmp_path / "partial-0001-of-0002.json").read_text()
    assert read_partials(str(tmp_path))[1]["notes"] == ["ran on \U0001f600"]


@pytest.mark.timeout(30)
def test_a_document_nested_too_deeply_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, _parts())
    (tmp_path / "partial-0001-of-0002.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(
        ConfigurationError, match=r"partial-0001-of-0002\.json: not JSON \(nested too deeply\)"
    ):
        read_partials(str(tmp_path))


@pytest.mark.timeout(30)
@pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(), reason="POSIX files")
@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero", "directory"])
def test_a_partial_that_is_not_a_regular_file_is_refused(kind: str, tmp_path: Path) -> None:
    _write(tmp_path, _parts())
    name = tmp_path / "partial-0001-of-0002.json"
    name.unlink()
    if kind == "fifo":
        os.mkfifo(name)  # no writer: a blocking read waits forever
    elif kind == "directory":
        name.mkdir()  # was reported as a connection error to retry (IsADirectoryError)
    else:
        name.symlink_to("/dev/zero")  # reads without end
    with pytest.raises(ConfigurationError, match=r"partial-0001-of-0002\.json: not a regular file"):
        read_partials(str(tmp_path))


def test_a_link_to_a_regular_partial_is_read(tmp_path: Path) -> None:
    _write(tmp_path, _parts())
    name = tmp_path / "partial-0001-of-0002.json"
    name.rename(tmp_path / "elsewhere")
    name.symlink_to(tmp_path / "elsewhere")
    assert [p["worker_id"] for p in read_partials(str(tmp_path))] == [0, 1]


def test_a_directory_and_a_bucket_read_the_same_names(tmp_path: Path) -> None:
    """A backup beside the parts is no part, in a directory or under a prefix."""
    bodies = [json.dumps(part).encode() for part in _parts()]
    names = ["partial-0000-of-0002.json", "partial-0001-of-0002.json", "partial-0001-of-0002.json.bak"]
    objects = {f"run/{name}": body for name, body in zip(names, [*bodies, b"old"], strict=True)}
    (tmp_path / "run").mkdir()
    for name, body in objects.items():
        (tmp_path / name).write_bytes(body)
    objects["run/partial-0000-of-0002.json/nested"] = b"not a part"  # a "directory" in the bucket
    bucket = _Bucket({key: (len(body), body) for key, body in objects.items()})
    from_bucket = read_partials("s3://b/run/", s3_client=bucket)
    assert bucket.fetched == ["run/partial-0000-of-0002.json", "run/partial-0001-of-0002.json"]
    assert from_bucket == read_partials(str(tmp_path / "run"))


@pytest.mark.timeout(30)
def test_the_notes_of_many_workers_merge_in_linear_time() -> None:
    """Each worker's notes were compared with every note kept so far: 200 small partials of
    1,000 distinct notes each took many minutes.  Notes repeated across workers appear once."""
    template = _parts()[0]
    recorder = template["recorder"]
    for table in ("iterator_age", "accepted_records", "accepted_bytes", "load"):
        recorder[table] = {}
    parts = []
    for worker in range(200):
        part = copy.deepcopy(template)
        part.update(worker_id=worker, workers=200, shard_ids=[f"shardId-{worker:012d}"])
        part["options"].update(workers=200, shards=200)
        part["notes"] = ["shared", *(f"worker {worker} note {n}" for n in range(1000))]
        parts.append(part)
    notes = merge_partials(parts).notes
    assert len(notes) == 1 + 1 + 200 * 1000
    assert notes.count("shared") == 1 and notes[1] == "shared"


@pytest.mark.timeout(30)
def test_workers_started_a_century_apart_are_not_one_run() -> None:
    parts = _parts()
    parts[1]["started_at"] = "2126-01-01T00:00:00+00:00"
    with pytest.raises(ConfigurationError, match=r"start times are .* apart"):
        merge_partials(parts)


@pytest.mark.timeout(30)
def test_a_merge_larger_than_its_timeline_budget_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    parts = _parts()
    parts[1]["wall_seconds"] = 600_000.0  # a week-long worker: within the schema
    monkeypatch.setattr(partial_check, "MAX_TIMELINE_CELLS", 1_000_000)
    with pytest.raises(ConfigurationError, match="4 shards over 600000 s"):
        merge_partials(parts)


@pytest.mark.timeout(30)
def test_many_shards_named_only_in_a_series_are_refused_before_timelines_are_built(tmp_path: Path) -> None:
    parts = _parts()
    load = parts[1]["recorder"]["load"]
    template = next(iter(load.values()))
    for n in range(2_000):  # a small file; its report would build 2,000 week-long timelines
        load[f"ghost-{n}"] = {"records": {"3": 1}, "bytes": {"3": 1}, "keys": template["keys"]}
    for part in parts:
        part["wall_seconds"] = 600_000.0
    _write(tmp_path, parts)
    with pytest.raises(ConfigurationError, match=r"partial-0001-of-0002\.json: recorder/load names a shard"):
        merge_partials(read_partials(str(tmp_path)))


@pytest.mark.timeout(30)
def test_the_planned_duration_counts_in_the_timeline_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's timelines span the planned duration even when the workers ran briefly."""
    parts = _parts()
    for part in parts:
        part["options"]["workload"]["duration"] = 600_000.0
    monkeypatch.setattr(partial_check, "MAX_TIMELINE_CELLS", 1_000_000)
    with pytest.raises(ConfigurationError, match="4 shards over 600000 s"):
        merge_partials(parts)


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.asked: list[int] = []

    def read(self, limit: int) -> bytes:
        self.asked.append(limit)
        return self.data[:limit]


class _Bucket:
    """A listing and its objects: the S3 calls read_partials makes, nothing else."""

    def __init__(self, objects: dict[str, tuple[int, bytes]]) -> None:
        self.objects = objects
        self.fetched: list[str] = []

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        bucket = self

        class Pages:
            def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
                return [{"Contents": [{"Key": k, "Size": size} for k, (size, _) in bucket.objects.items()]}]

        return Pages()

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        self.fetched.append(Key)
        return {"Body": _Body(self.objects[Key][1])}


def test_an_oversized_object_in_the_bucket_is_refused_before_it_is_fetched() -> None:
    body = json.dumps(_parts()[0]).encode()
    bucket = _Bucket({"run/partial-0000-of-0001.json": (partial_check.MAX_PARTIAL_BYTES + 1, body)})
    with pytest.raises(ConfigurationError, match=r"s3://b/run/partial-0000-of-0001\.json: larger than"):
        read_partials("s3://b/run/", s3_client=bucket)
    assert bucket.fetched == []


def test_an_object_is_read_no_further_than_the_limit() -> None:
    body = json.dumps(_parts()[0]).encode()
    bucket = _Bucket({"run/partial-0000-of-0002.json": (len(body), body)})
    read_partials("s3://b/run/", s3_client=bucket)
    assert bucket.fetched == ["run/partial-0000-of-0002.json"]


def test_a_summary_loads_in_one_pass_over_its_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    """A summary is loaded in count order without a walk from the head per key."""
    counters = [[f"k{i}", i + 1, 0] for i in range(5000)]
    counters += [["same-a", 7, 1], ["same-b", 7, 2]]

    def no_walk(*args: Any) -> None:
        raise AssertionError("a key was inserted by walking the buckets")

    monkeypatch.setattr(StreamSummary, "_insert", no_walk)
    summary = StreamSummary.from_dict(
        {"capacity": 6000, "total": 10**6, "evictions": 3, "counters": counters}
    )
    assert len(summary) == 5002
    assert summary.top(1)[0].key == "k4999"
    assert {c.key: (c.count, c.error) for c in summary.items()}["same-b"] == (7, 2)
    counts = [c.count for c in summary.items()]
    assert counts == sorted(counts, reverse=True)
    assert summary.min_count == 0  # not full


def test_a_histogram_round_trips_through_its_checks() -> None:
    histogram = LatencyHistogram()
    histogram.record_micros([5, 900, 70_000, 3_000_000])
    again = LatencyHistogram.from_dict(copy.deepcopy(histogram.to_dict()))
    assert again.count == 4
    assert again.quantiles_ms("p99") == histogram.quantiles_ms("p99")


def _counting(*counts: int) -> dict[str, Any]:
    """A histogram holding ``counts`` values at 1, 2, 3... ms, as a worker would encode it."""
    histogram = LatencyHistogram()
    for index, count in enumerate(counts, 1):
        histogram.record_n(index / 1000, count)
    return {**histogram.to_dict(), "sum_us": 0}  # the sum is not what is tested


def test_a_histogram_whose_counters_would_wrap_its_total_is_refused() -> None:
    """hdrh sums decoded counters in 64 bits: three near 2**62 decoded to a negative count."""
    with pytest.raises(
        ConfigurationError, match=r"counters do not decode \(a counter or a run of zeros of 2\*\*48 or more\)"
    ):
        LatencyHistogram.from_dict(_counting(2**62 - 1, 2**62 - 1, 2**62 - 1))
    with pytest.raises(
        ConfigurationError, match=r"counters do not decode \(a counter or a run of zeros of 2\*\*48 or more\)"
    ):
        LatencyHistogram.from_dict(_counting(2**48))


def test_counters_below_the_bound_decode_and_merge_exactly() -> None:
    big = 2**48 - 1
    merged = LatencyHistogram()
    for _ in range(3):
        merged.merge(LatencyHistogram.from_dict(_counting(big, big, 7)))
    assert merged.count == 3 * (2 * big + 7)
    assert merged.quantiles_ms("p50") == {"p50": 2.0}


def test_crafted_histograms_in_partials_are_refused_by_file(tmp_path: Path) -> None:
    parts = _parts()
    parts[1]["recorder"]["ack_latency"] = _counting(2**62 - 1, 2**62 - 1, 2**62 - 1)
    _write(tmp_path, parts)
    with pytest.raises(
        ConfigurationError, match=r"partial-0001-of-0002\.json: a latency histogram's counters do not decode"
    ):
        merge_partials(read_partials(str(tmp_path)))
