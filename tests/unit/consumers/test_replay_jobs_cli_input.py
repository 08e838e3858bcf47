"""`shardline replay plan`: a job name no runner can use is refused before the source is listed,
and every bad-input error of the sliced commands exits with status 2 (docs/errors.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers import preflight
from consumers.replay import jobs_cli
from consumers.replay.jobs_cli import _fail, build_parser, main
from consumers.replay.manifest import Slice, Unit
from shardline.errors import InvalidRequestError, TransientServiceError, ValidationError


@pytest.fixture
def no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any call made despite the checks fails at once instead of reaching a real service."""
    for variable in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


def _plan(tmp_path: Path, *extra: str) -> int:
    arguments = [
        "s3://archive/2024/",
        "--slices",
        "2",
        "--out",
        str(tmp_path / "plan.json"),
        "--sink",
        f"file://{tmp_path}/out.jsonl",
        "--checkpoint",
        "dynamodb://replay",
        *extra,
    ]
    return main("plan", build_parser("shardline replay", "plan").parse_args(arguments))


@pytest.mark.usefixtures("no_endpoint")
@pytest.mark.parametrize(
    ("name", "why"),
    [("a b/c", "checkpoint namespace"), ("x" * 245, "table names are 3-255")],
    ids=["space and slash", "table name too long"],
)
def test_plan_refuses_a_job_name_before_listing_the_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, why: str
) -> None:
    assert _plan(tmp_path, "--name", name) == 2  # before: listed the archive and wrote the manifest
    err = capsys.readouterr().err
    assert "job name" in err and why in err and "Transient" not in err and err.count("\n") == 1
    assert not (tmp_path / "plan.json").exists()


@pytest.mark.usefixtures("no_endpoint")
@pytest.mark.parametrize("seconds", ["2", "nan", "inf", "100000"])
def test_plan_refuses_a_lease_no_runner_could_keep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seconds: str
) -> None:
    assert _plan(tmp_path, "--name", "ok", "--lease-seconds", seconds) == 2
    assert "--lease-seconds must be from 3 to 86400" in capsys.readouterr().err


def test_every_validation_error_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert _fail(ValidationError("bad")) == 2
    # a service refusing a request while the job runs is a run-time failure, not bad input
    assert _fail(InvalidRequestError("rejected", code="ValidationException", service="dynamodb")) == 1
    assert _fail(TransientServiceError("down", code="ServiceUnavailable", service="s3")) == 1
    assert capsys.readouterr().err.count("\n") == 3


def test_plan_names_a_manifest_path_it_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def listed(source: object, args: object) -> tuple[tuple[Slice, ...], dict[str, str]]:
        unit = Unit("s0000-u00000", "s3", 5, bucket="archive", key="2024/a")
        return (Slice(0, (unit,)),), {"bucket": "archive", "prefix": "2024/"}

    async def no_checks(*_: object) -> None:
        return None

    monkeypatch.setattr(jobs_cli, "_cut", listed)
    monkeypatch.setattr(preflight, "run_checks", no_checks)
    out = tmp_path / "no-such-directory" / "plan.json"
    arguments = ["s3://archive/2024/", "--slices", "1", "--out", str(out), "--name", "ok"]
    arguments += ["--sink", f"file://{tmp_path}/out.jsonl", "--checkpoint", "dynamodb://replay"]
    assert main("plan", build_parser("shardline replay", "plan").parse_args(arguments)) == 2
    err = capsys.readouterr().err
    # before: "TransientServiceError: FileNotFoundError (connection or timeout)", exit 1
    assert err.startswith("shardline replay: ConfigurationError: cannot write the manifest to ")
    assert str(out) in err and "No such file or directory" in err and err.count("\n") == 1
