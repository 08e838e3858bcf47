"""``run --workers N`` binds its workers to the manifest the supervisor read.

Each worker reads the manifest again from its location.  Replaced in between by another plan
of the same job name (a fresh job, so the namespace was not bound yet) with more slices, the
workers ran the new plan's first slices only, the rest were never started, and the supervisor
reported every slice finished (exit 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consumers.replay import jobs_cli, slices, workers
from consumers.replay.manifest import Manifest, Slice, Unit, manifest_to_json


def _manifest(count: int) -> Manifest:
    return Manifest(
        name="j",
        source="s3://b/p/",
        sink="file:///tmp/replay-workers-hash.jsonl",
        checkpoint="dynamodb://t",
        slices=tuple(Slice(i, (Unit(f"u{i}", "s3", 1, bucket="b", key=f"p/{i}"),)) for i in range(count)),
    )


def _run(*argv: str) -> int:
    return jobs_cli.main("run", jobs_cli.build_parser("shardline replay", "run").parse_args(list(argv)))


def test_the_supervisor_gives_its_workers_the_hash_it_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plan.json"
    path.write_text(manifest_to_json(_manifest(2)))
    seen: dict[str, Any] = {}

    async def run_workers(location: str, indices: Any, count: int, **options: Any) -> list[Any]:
        seen.update(options, indices=list(indices))
        return []

    monkeypatch.setattr(workers, "run_workers", run_workers)
    assert _run("--manifest", str(path), "--workers", "2") == 0
    assert seen == {"indices": [0, 1], "manifest_hash": _manifest(2).hash}
    command = workers.worker_command(str(path), 1, manifest_hash=_manifest(2).hash)
    assert command[command.index("--manifest-hash") + 1] == _manifest(2).hash


def test_a_worker_refuses_a_manifest_replaced_since_the_supervisor_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plan.json"
    read_by_supervisor = _manifest(2).hash
    path.write_text(manifest_to_json(_manifest(4)))  # replaced: another plan, more slices
    ran: list[int] = []

    async def run_slice(manifest: Manifest, index: int, **_: Any) -> None:
        ran.append(index)

    monkeypatch.setattr(slices, "run_slice", run_slice)
    status = _run("--manifest", str(path), "--slice", "0", "--manifest-hash", read_by_supervisor)
    assert status == 2
    assert ran == []
    err = capsys.readouterr().err
    assert "ManifestMismatchError: the manifest at --manifest was replaced" in err


def test_a_worker_runs_the_manifest_the_supervisor_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plan.json"
    path.write_text(manifest_to_json(_manifest(2)))
    ran: list[int] = []

    async def run_slice(manifest: Manifest, index: int, **_: Any) -> Any:
        ran.append(index)
        return slices.SliceOutcome(index, "r")

    monkeypatch.setattr(slices, "run_slice", run_slice)
    assert _run("--manifest", str(path), "--slice", "1", "--manifest-hash", _manifest(2).hash) == 0
    assert ran == [1]
