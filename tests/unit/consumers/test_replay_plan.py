"""Planning, manifests, status and rate caps of a sliced replay (no I/O)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest

from consumers.replay.dispatch import command
from consumers.replay.ledger import LedgerView, SliceRow
from consumers.replay.manifest import Manifest, RateCaps, Slice, Unit, manifest_from_json, manifest_to_json
from consumers.replay.plan import (
    balance,
    contiguous_groups,
    parse_source,
    plan_kafka,
    split_offsets,
    split_window,
)
from consumers.replay.ratecap import RecordRate
from consumers.replay.status import job_status
from shardline.errors import ConfigurationError
from shardline.records import SHARD_END


def test_contiguous_groups_cut_near_equal_sums_and_keep_order() -> None:
    weights = [2 + i % 2 for i in range(24)]
    runs = contiguous_groups(weights, 8)
    assert [i for run in runs for i in run] == list(range(24))
    sums = [sum(weights[i] for i in run) for run in runs]
    assert len(runs) == 8 and max(sums) - min(sums) <= 3


def test_contiguous_groups_never_make_empty_or_more_runs_than_items() -> None:
    assert contiguous_groups([5], 3) == [range(0, 1)]
    assert contiguous_groups([100, 1, 1, 1], 4) == [range(0, 1), range(1, 2), range(2, 3), range(3, 4)]
    assert contiguous_groups([0, 0, 0, 0], 2) == [range(0, 2), range(2, 4)]
    assert contiguous_groups([], 2) == []
    with pytest.raises(ConfigurationError):
        contiguous_groups([1], 0)


def test_balance_puts_heaviest_first_into_the_lightest_bin() -> None:
    bins = balance([5, 5, 5, 5, 1, 1], 3)
    loads = sorted(sum([5, 5, 5, 5, 1, 1][i] for i in members) for members in bins)
    assert loads == [6, 6, 10]
    assert balance([1, 1], 5) == [[0], [1]]


def test_windows_cover_the_range_without_gaps() -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    windows = split_window(start, start + timedelta(hours=1), 4)
    assert windows[0][0] == start and windows[-1][1] == start + timedelta(hours=1)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert len(split_window(start, start + timedelta(milliseconds=2), 10)) == 2
    with pytest.raises(ConfigurationError):
        split_window(start, start, 2)


def test_offsets_split_into_about_equal_runs() -> None:
    assert split_offsets(0, 100, 25) == [(0, 25), (25, 50), (50, 75), (75, 100)]
    assert split_offsets(10, 10, 5) == [(10, 10)]
    slices = asyncio.run(plan_kafka("t", [(0, 0, 1000), (1, 0, 200)], 6))
    offsets = sum(unit.weight for piece in slices for unit in piece.units)
    assert offsets == 1200 and len(slices) == 6
    names = [unit.name for piece in slices for unit in piece.units]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(
    ("uri", "kind", "location", "path"),
    [
        ("kinesis://telemetry", "kinesis", "telemetry", ""),
        ("kafka://b-1:9092,b-2:9092/telemetry", "kafka", "b-1:9092,b-2:9092", "telemetry"),
        ("s3://archive/2024/05/", "s3", "archive", "2024/05/"),
    ],
)
def test_source_uris_are_the_consume_forms(uri: str, kind: str, location: str, path: str) -> None:
    source = parse_source(uri)
    assert (source.kind, source.location, source.path) == (kind, location, path)


@pytest.mark.parametrize(
    "uri", ["telemetry", "kinesis://", "kafka://b:9092", "kafka://b/t1,t2", "http://x/y"]
)
def test_bad_source_uris_are_refused(uri: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_source(uri)


def _manifest(**changes: object) -> Manifest:
    units = (
        Unit("s0000-u00000", "s3", 100, bucket="b", key="k0"),
        Unit("s0000-u00001", "s3", 50, bucket="b", key="k1"),
    )
    base = Manifest(
        name="job",
        source="s3://b/",
        sink="dynamodb://t",
        checkpoint="dynamodb://leases",
        slices=(Slice(0, units), Slice(1, (Unit("s0001-u00000", "s3", 70, bucket="b", key="k2"),))),
        caps=RateCaps(read_records_per_second=100.0),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_manifest_round_trips_and_its_hash_covers_every_setting() -> None:
    manifest = _manifest()
    assert manifest_from_json(manifest_to_json(manifest)) == manifest
    hashes = {
        manifest.hash,
        _manifest(sink="dynamodb://other").hash,
        _manifest(transform="m:f").hash,
        _manifest(checkpoint="dynamodb://other").hash,
        _manifest(caps=RateCaps(read_records_per_second=99.0)).hash,
        _manifest(dead_letter="s3://d/").hash,
    }
    assert len(hashes) == 6


def test_an_edited_manifest_is_refused() -> None:
    document = json.loads(manifest_to_json(_manifest()))
    document["slices"][1]["units"][0]["key"] = "elsewhere"
    with pytest.raises(ConfigurationError, match="changed after it was planned"):
        manifest_from_json(json.dumps(document))
    with pytest.raises(ConfigurationError, match="not a replay manifest"):
        manifest_from_json('{"version": 1}')
    with pytest.raises(ConfigurationError, match="unsupported manifest version"):
        manifest_from_json("{}")
    with pytest.raises(ConfigurationError, match="slice 5 is not in the manifest"):
        _manifest().slice(5)


def _row(index: int, state: str, *, expires: float | None = None, runner: str | None = None) -> SliceRow:
    counts = {"read": 10, "written": 9, "duplicates": 0, "dead_lettered": 1}
    return SliceRow(index, state, runner, 0.0, expires, 1, None, counts)


def test_status_states_and_exit_codes() -> None:
    manifest = _manifest()
    done = {"s0000-u00000": SHARD_END, "s0000-u00001": SHARD_END, "s0001-u00000": SHARD_END}
    finished = LedgerView(manifest.hash, {0: _row(0, "done"), 1: _row(1, "done")}, done)
    assert job_status(manifest, finished, now=100.0).exit_code == 0

    partial = {"s0000-u00000": SHARD_END, "s0000-u00001": "3"}
    running = LedgerView(manifest.hash, {0: _row(0, "running", expires=200.0, runner="h:1:x")}, partial)
    status = job_status(manifest, running, now=100.0)
    assert (status.state, status.exit_code) == ("running", 3)
    assert [piece.work_left for piece in status.slices] == [50, 70]
    assert status.totals() == {"read": 10, "written": 9, "duplicates": 0, "dead_lettered": 1}

    stalled = job_status(manifest, running, now=300.0)
    assert (stalled.slices[0].state, stalled.exit_code) == ("stalled", 4)
    assert job_status(manifest, LedgerView(None, {}, {}), now=0.0).exit_code == 5
    assert "stalled" in "\n".join(stalled.lines())


def test_record_rate_waits_for_tokens_and_follows_a_new_share() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async def scenario() -> None:
        rate = RecordRate(100.0, clock=lambda: now[0], sleep=sleep)
        await rate.acquire(100)  # the bucket starts empty: one second's worth takes a second
        assert now[0] == pytest.approx(1.0)
        rate.set_rate(50.0)  # another slice started: half the share
        await rate.acquire(50)
        assert now[0] == pytest.approx(2.0)
        rate.set_rate(None)
        await rate.acquire(10_000)
        assert now[0] == pytest.approx(2.0)

    asyncio.run(scenario())
    with pytest.raises(ConfigurationError):
        RecordRate(0.0)


def test_replay_dispatch_keeps_the_single_process_form_and_adds_actions() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="shardline replay")
    command.configure(parser)
    planned, extra = parser.parse_known_args(["status", "--manifest", "m.json"])
    assert (planned.replay_action, planned.manifest, extra) == ("status", "m.json", [])
    legacy, _ = parser.parse_known_args(["s3://b/p", "--name", "n", "--sink", "file:///tmp/x.jsonl"])
    assert getattr(legacy, "replay_action", None) is None and legacy.name == "n"
