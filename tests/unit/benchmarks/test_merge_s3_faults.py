"""`stream-bench merge s3://...`: a missing bucket and an object deleted between the listing and
its fetch are refused in one line naming them, with the exit status of a refusal (2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import benchmarks.merge as merge
from benchmarks.cli import main
from benchmarks.merge import read_partials
from shardline.errors import ConfigurationError, MissingResourceError
from tests.unit.benchmarks.test_partial_check import _Bucket, _parts


def _missing(code: str, operation: str) -> ClientError:
    message = (
        "The specified bucket does not exist"
        if code == "NoSuchBucket"
        else "The specified key does not exist."
    )
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 404}}, operation
    )


class _NoBucket(_Bucket):
    def get_paginator(self, name: str) -> Any:
        class Pages:
            def paginate(self, **kwargs: Any) -> Any:
                raise _missing("NoSuchBucket", "ListObjectsV2")
                yield  # a generator, as botocore's pages are

        return Pages()


class _Vanishing(_Bucket):
    """Lists every object, then finds ``gone`` deleted when it is fetched."""

    def __init__(self, objects: dict[str, tuple[int, bytes]], gone: str) -> None:
        super().__init__(objects)
        self.gone = gone

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        if Key == self.gone:
            raise _missing("NoSuchKey", "GetObject")
        return super().get_object(Bucket=Bucket, Key=Key)


def _objects() -> dict[str, tuple[int, bytes]]:
    bodies = [json.dumps(part).encode() for part in _parts()]
    return {f"run/partial-{n:04d}-of-0002.json": (len(body), body) for n, body in enumerate(bodies)}


def test_a_missing_bucket_is_a_missing_resource_named_by_the_source() -> None:
    with pytest.raises(MissingResourceError, match=r"^S3 bucket 'nope' \(named by the SOURCE argument\)"):
        read_partials("s3://nope/run/", s3_client=_NoBucket({}))


def test_an_object_deleted_after_the_listing_is_refused_by_name() -> None:
    bucket = _Vanishing(_objects(), gone="run/partial-0001-of-0002.json")
    with pytest.raises(
        ConfigurationError,
        match=r"^s3://b/run/partial-0001-of-0002\.json: deleted after the prefix was listed",
    ):
        read_partials("s3://b/run/", s3_client=bucket)


@pytest.mark.parametrize(
    ("client", "says"),
    [
        (_NoBucket({}), "stream-bench: S3 bucket 'b' (named by the SOURCE argument) does not exist"),
        (
            _Vanishing(_objects(), gone="run/partial-0000-of-0002.json"),
            "stream-bench: s3://b/run/partial-0000-of-0002.json: deleted after the prefix was listed",
        ),
    ],
)
def test_the_command_refuses_them_in_one_line_with_status_2(
    client: _Bucket,
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(merge, "_s3", lambda: client)
    assert main(["merge", "s3://b/run/", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(says)
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "result.json").exists()


class _Listing:
    """The listing a worker's bucket check makes: answers it, or refuses it with ``code``."""

    def __init__(self, code: str | None) -> None:
        self.code = code
        self.asked: list[dict[str, Any]] = []

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        self.asked.append(kwargs)
        if self.code == "NoSuchBucket":
            raise _missing("NoSuchBucket", "ListObjectsV2")
        if self.code == "AccessDenied":
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}, "ResponseMetadata": {}},
                "ListObjectsV2",
            )
        return {"KeyCount": 0}


def test_a_worker_with_a_missing_bucket_is_refused_before_its_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The partial is written at the end of the run: a mistyped bucket lost the whole run."""
    import benchmarks.run

    ran: list[object] = []

    async def run_kinesis(*args: object) -> None:
        ran.append(args)

    listing = _Listing("NoSuchBucket")
    monkeypatch.setattr(merge, "_s3", lambda: listing)
    monkeypatch.setattr(benchmarks.run, "run_kinesis", run_kinesis)
    argv = [
        "run",
        "--target",
        "kinesis",
        "--stream",
        "s",
        "--shards",
        "2",
        "--workers",
        "2",
        "--worker-id",
        "1",
    ]
    assert main([*argv, "--out", "s3://typo/runs/run1/"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "stream-bench: S3 bucket 'typo' (named by --out) does not exist: create it, or fix the name and "
        "the region/endpoint"
    )
    assert ran == []
    assert listing.asked == [{"Bucket": "typo", "Prefix": "runs/run1/partial-", "MaxKeys": 1}]


@pytest.mark.parametrize("code", [None, "AccessDenied"])
def test_a_bucket_that_is_there_or_may_not_be_listed_passes(code: str | None) -> None:
    """A role that may put partials but not list them is let through to its put."""
    merge.check_partial_bucket("s3://b/runs/run1/", s3_client=_Listing(code))


def test_a_prefix_reused_by_a_run_of_another_size_is_refused_before_anything_is_fetched() -> None:
    objects = _objects()
    stale = next(iter(objects.values()))
    objects["run/partial-0000-of-0004.json"] = stale
    objects["run/partial-0003-of-0004.json"] = stale
    bucket = _Bucket(objects)
    with pytest.raises(
        ConfigurationError,
        match=r"^s3://b/run/partial-0000-of-0002\.json and s3://b/run/partial-0000-of-0004\.json are not "
        r"parts of one run: named for 2 and 4 workers$",
    ):
        read_partials("s3://b/run/", s3_client=bucket)
    assert bucket.fetched == []


def test_a_directory_of_two_runs_is_refused_by_their_names(tmp_path: Path) -> None:
    for name in ("partial-0000-of-0002.json", "partial-00001-of-00003.json"):
        (tmp_path / name).write_text("not read")
    with pytest.raises(ConfigurationError, match=r"are not parts of one run: named for 2 and 3 workers$"):
        read_partials(str(tmp_path))


def test_an_out_that_cannot_take_files_is_refused_before_any_partial_is_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = _Bucket(_objects())
    monkeypatch.setattr(merge, "_s3", lambda: bucket)
    a_file = tmp_path / "results"
    a_file.write_text("not a directory")
    assert main(["merge", "s3://b/run/", "--out", str(a_file)]) == 2
    assert "cannot write files there" in capsys.readouterr().err
    assert bucket.fetched == []
