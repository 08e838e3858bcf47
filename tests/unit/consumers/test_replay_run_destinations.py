"""A manifest's sink, dead letter and transform are checked before a runner touches the ledger.

Before, they were built only after the slice was claimed: a hand-edited manifest (hash
recomputed) with a misspelt sink had already bound the job's checkpoint namespace to its own
hash, so the corrected manifest was refused for ever with ``ManifestMismatchError``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from consumers.replay import slices
from consumers.replay.jobs_cli import build_parser, main
from consumers.replay.manifest import Manifest, Slice, Unit, manifest_to_json
from shardline import clients
from shardline.errors import ConfigurationError


class _ClientBuilt(Exception):
    """A network client was built: the manifest reached the ledger."""


def _manifest(**changes: Any) -> Manifest:
    settings: dict[str, Any] = {
        "name": "j",
        "source": "s3://b/p/",
        "sink": "file:///tmp/replay-destinations.jsonl",
        "checkpoint": "dynamodb://t",
        "slices": (Slice(0, (Unit("u0", "s3", 1, bucket="b", key="p/a"),)),),
        **changes,
    }
    return Manifest(**settings)


BAD = [
    ("sink", {"sink": "nope://x"}),
    ("sink", {"sink": "kinesis://"}),
    ("dead_letter", {"dead_letter": "ftp://host/x"}),
    ("transform", {"transform": "no_such_module_here:f"}),
    ("transform", {"transform": "json"}),
]


@pytest.mark.parametrize(("field", "changes"), [(f, c) for f, c in BAD], ids=[str(c) for _, c in BAD])
def test_an_unusable_destination_is_refused_before_any_client_is_built(
    monkeypatch: pytest.MonkeyPatch, field: str, changes: dict[str, Any]
) -> None:
    def no_clients(*args: Any, **kwargs: Any) -> Any:
        raise _ClientBuilt

    monkeypatch.setattr(clients, "aiobotocore_client", no_clients)
    with pytest.raises(ConfigurationError, match=f"^manifest {field} is refused: "):
        asyncio.run(asyncio.wait_for(slices.run_slice(_manifest(**changes), 0), 10))


def test_usable_destinations_pass_the_check() -> None:
    slices._check_destinations(_manifest(dead_letter="s3://dl/prefix/", transform="json:dumps"))


def test_the_run_command_refuses_it_in_one_line_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")  # a call, were one made, fails at once
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    path = tmp_path / "plan.json"
    path.write_text(manifest_to_json(_manifest(sink="nope://x")))
    args = build_parser("shardline replay", "run").parse_args(["--manifest", str(path), "--slice", "0"])
    assert main("run", args) == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after the slice's progress lines
    assert last.startswith("shardline replay: ConfigurationError: manifest sink is refused: ")
