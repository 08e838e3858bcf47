"""A manifest is read whole on every runner: its size is bounded before it is read or parsed.

Before the bound, a huge (or endless) manifest file or S3 object was read into memory whole by
each runner and by ``status``, and ``plan`` could write a manifest no runner could read.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from consumers.replay import manifest as manifest_module
from consumers.replay import plan as plan_module
from consumers.replay.manifest import Manifest, Slice, Unit, load_manifest, manifest_to_json
from shardline.errors import ConfigurationError

LIMIT = 4096
CHUNK = 1024 * 1024  # what load_manifest asks the body for at a time


def _manifest(units: int = 1) -> Manifest:
    return Manifest(
        name="j",
        source="s3://b/p/",
        sink="file:///tmp/replay-size.jsonl",
        checkpoint="dynamodb://t",
        slices=(Slice(0, tuple(Unit(f"u{i}", "s3", 1, bucket="b", key=f"p/{i}") for i in range(units))),),
    )


@pytest.fixture(autouse=True)
def _small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest_module, "MAX_MANIFEST_BYTES", LIMIT)
    monkeypatch.setattr(plan_module, "MAX_MANIFEST_BYTES", LIMIT)


class EndlessBody:
    """An S3 body that never ends; counts what it handed out."""

    def __init__(self) -> None:
        self.handed_out = 0

    async def __aenter__(self) -> EndlessBody:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def read(self, amt: int | None = None) -> bytes:
        if amt is None:  # "everything": never returns
            await asyncio.Event().wait()
        size = min(amt or CHUNK, CHUNK)
        self.handed_out += size
        return b" " * size


class FakeS3:
    def __init__(self, body: Any, length: int | None) -> None:
        self.body = body
        self.length = length

    async def get_object(self, **_: Any) -> dict[str, Any]:
        response: dict[str, Any] = {"Body": self.body}
        if self.length is not None:
            response["ContentLength"] = self.length
        return response


def test_a_manifest_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(manifest_to_json(_manifest()) + " " * LIMIT)
    with pytest.raises(ConfigurationError, match=f"larger than {LIMIT} bytes"):
        asyncio.run(load_manifest(str(path)))


def test_a_manifest_file_within_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(manifest_to_json(_manifest()))
    assert asyncio.run(load_manifest(str(path))) == _manifest()


def test_an_endless_manifest_in_s3_is_refused_after_reading_at_most_the_limit() -> None:
    body = EndlessBody()
    with pytest.raises(ConfigurationError, match=f"larger than {LIMIT} bytes"):
        asyncio.run(asyncio.wait_for(load_manifest("s3://jobs/plan.json", s3=FakeS3(body, None)), 5))
    assert 0 < body.handed_out <= LIMIT + CHUNK


def test_a_manifest_in_s3_stated_too_long_is_refused_before_it_is_read() -> None:
    body = EndlessBody()
    with pytest.raises(ConfigurationError, match=f"larger than {LIMIT} bytes"):
        asyncio.run(asyncio.wait_for(load_manifest("s3://jobs/plan.json", s3=FakeS3(body, LIMIT + 1)), 5))
    assert body.handed_out == 0


def test_plan_refuses_to_write_a_manifest_no_runner_would_read(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    big = _manifest(units=100)
    assert len(manifest_to_json(big)) > LIMIT
    with pytest.raises(ConfigurationError, match="larger than"):
        asyncio.run(plan_module.save_manifest(big, str(out)))
    assert not out.exists()
    asyncio.run(plan_module.save_manifest(_manifest(), str(out)))
    assert json.loads(out.read_text())["name"] == "j"
