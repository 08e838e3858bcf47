"""A job ledger item no runner writes (edited by hand, another tool's) is a typed error naming it.

``status`` and a runner's ``bind`` parsed the job's table with bare ``int()`` and ``[...]``: a
slice row with a fractional counter, a ``slice-`` key without a number, a job row whose hash
is not text or a unit checkpoint that is no sequence number ended the command in a traceback
(``ValueError``, ``KeyError``) instead of one line naming the item.  So did the initial position
(``TRIM_HORIZON``) every new unit lease holds, for a Kafka unit not yet checkpointed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import shardline.clients
from consumers.replay.jobs_cli import build_parser, main
from consumers.replay.ledger import JobLedger
from consumers.replay.manifest import Manifest, Slice, Unit, manifest_to_json
from consumers.replay.status import job_status
from shardline.errors import LeaseRowError

Item = dict[str, Any]


class _Table:
    """Answers ``scan`` and ``get_item`` with the given items, as DynamoDB would."""

    def __init__(self, items: list[Item]) -> None:
        self.items = items

    async def scan(self, **_: Any) -> dict[str, Any]:
        return {"Items": self.items}

    async def get_item(self, Key: Item, **_: Any) -> dict[str, Any]:
        found = [item for item in self.items if item["leaseKey"] == Key["leaseKey"]]
        return {"Item": found[0]} if found else {}


JOB = {"leaseKey": {"S": "job"}, "manifestHash": {"S": "ab" * 32}}
CRAFTED = {
    "slice key without a number": {"leaseKey": {"S": "slice-abc"}},
    "fractional counter": {"leaseKey": {"S": "slice-0000"}, "read": {"N": "1.5"}},
    "job hash not text": {"leaseKey": {"S": "job"}, "manifestHash": {"N": "7"}},
    "checkpoint no sequence number": {"leaseKey": {"S": "s0000-u00000"}, "checkpoint": {"S": "abc"}},
}


@pytest.mark.parametrize("item", CRAFTED.values(), ids=CRAFTED.keys())
async def test_a_crafted_item_is_a_lease_row_error_naming_it(item: Item) -> None:
    with pytest.raises(LeaseRowError, match=repr(item["leaseKey"]["S"])):
        await JobLedger(_Table([item]), "t").view()


async def test_a_job_row_without_a_hash_is_a_lease_row_error_where_bind_reads_it() -> None:
    with pytest.raises(LeaseRowError, match="'job'"):
        await JobLedger(_Table([CRAFTED["job hash not text"]]), "t").bound_hash()


async def test_the_items_runners_write_still_read() -> None:
    slice_row = {
        "leaseKey": {"S": "slice-0000"},
        "state": {"S": "running"},
        "runner": {"S": "host:1:ab"},
        "expires": {"N": "12.5"},
        "read": {"N": "3"},
    }
    unit = {"leaseKey": {"S": "s0000-u00000"}, "checkpoint": {"S": "SHARD_END"}}
    view = await JobLedger(_Table([JOB, slice_row, unit]), "t").view()
    assert view.manifest_hash == "ab" * 32 and view.slices[0].counts["read"] == 3
    assert view.checkpoints == {"s0000-u00000": "SHARD_END"}


def test_status_names_a_crafted_item_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = Manifest(
        name="j",
        source="s3://b/p/",
        sink="file:///tmp/replay-ledger-items.jsonl",
        checkpoint="dynamodb://t",
        slices=(Slice(0, (Unit("s0000-u00000", "s3", 10, bucket="b", key="p/a"),)),),
    )
    path = tmp_path / "plan.json"
    path.write_text(manifest_to_json(manifest))

    @contextlib.asynccontextmanager
    async def client(*_: Any, **__: Any) -> AsyncIterator[_Table]:
        yield _Table([JOB, CRAFTED["fractional counter"]])

    monkeypatch.setattr(shardline.clients, "aiobotocore_client", client)
    args = build_parser("shardline replay", "status").parse_args(["--manifest", str(path)])
    assert main("status", args) == 1  # before: a ValueError traceback
    err = capsys.readouterr().err
    assert err.startswith("shardline replay: LeaseRowError: ") and "'slice-0000'" in err
    assert err.count("\n") == 1


async def test_status_of_a_kafka_unit_not_yet_checkpointed_counts_its_whole_range() -> None:
    """A new lease holds the KCL's initial position, which status read as an offset: ValueError."""
    unit = Unit("s0000-u00000", "kafka", 100, topic="t", partition=0, start_offset=0, end_offset=100)
    manifest = Manifest(
        name="j",
        source="kafka://127.0.0.1:9092/t",
        sink="file:///tmp/replay-ledger-items.jsonl",
        checkpoint="dynamodb://t",
        slices=(Slice(0, (unit,)),),
    )
    created = {"leaseKey": {"S": "s0000-u00000"}, "checkpoint": {"S": "TRIM_HORIZON"}}
    view = await JobLedger(_Table([JOB, created]), "t").view()
    status = job_status(manifest, view, now=0.0)
    assert (status.state, status.slices[0].work_left, status.slices[0].units_done) == ("pending", 100, 0)
