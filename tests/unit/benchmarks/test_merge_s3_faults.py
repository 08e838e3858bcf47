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
