"""Files Shardline writes are private and append-only; file URIs cannot climb with '..'."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.checkpoint.sqlite import SQLiteCheckpointStore
from consumers.checkpoint.uri import open_checkpoint_store
from consumers.sinks.base import DeadLetterEntry
from consumers.sinks.file import FileSink
from consumers.sinks.uri import dead_letter_from_uri, sink_from_uri
from shardline.errors import ConfigurationError
from shardline.records import ConsumedRecord, KinesisPosition


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # the usual default: new files 0644 unless created privately
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _record(seq: int) -> ConsumedRecord:
    return ConsumedRecord(b"secret-payload", "k", KinesisPosition("s", "shardId-000000000000", str(seq)))


async def test_file_sink_and_dead_letter_create_private_files_and_directories(tmp_path: Path) -> None:
    sink = sink_from_uri(f"file://{tmp_path}/new/dir/out.jsonl")
    await sink.write([_record(1)])
    dead = dead_letter_from_uri(f"file://{tmp_path}/dlq/dead.jsonl")
    await dead.put([DeadLetterEntry(_record(2), reason="r", error_type="E", attempts=1)])
    assert _mode(tmp_path / "new/dir/out.jsonl") == 0o600
    assert _mode(tmp_path / "new") == 0o700 and _mode(tmp_path / "new/dir") == 0o700
    assert _mode(tmp_path / "dlq/dead.jsonl") == 0o600 and _mode(tmp_path / "dlq") == 0o700


async def test_sqlite_checkpoints_are_private(tmp_path: Path) -> None:
    store = SQLiteCheckpointStore(tmp_path / "state" / "leases.db")
    await store.list()
    await store.close()
    assert _mode(tmp_path / "state" / "leases.db") == 0o600
    assert _mode(tmp_path / "state") == 0o700
    for extra in (tmp_path / "state").iterdir():  # -wal / -shm follow the database's mode
        assert _mode(extra) & 0o077 == 0, extra.name


async def test_existing_files_keep_their_mode(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    path.write_bytes(b"")
    path.chmod(0o640)
    await FileSink(path).write([_record(1)])
    assert _mode(path) == 0o640


def test_a_sink_refuses_to_append_to_a_file_it_did_not_write(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"my notes\nline two")
    with pytest.raises(ConfigurationError, match="not a Shardline JSON-lines file"):
        sink_from_uri(f"file://{notes}")
    with pytest.raises(ConfigurationError, match="not a Shardline JSON-lines file"):
        dead_letter_from_uri(f"file://{notes}")
    assert notes.read_bytes() == b"my notes\nline two"


@pytest.mark.parametrize(
    "uri",
    [
        "file:///tmp/out/../escape.jsonl",
        "file:///tmp/out/%2e%2e/escape.jsonl",
        "file:///tmp/out/%2E%2E/%2e%2e/etc/x.jsonl",
        "file:///tmp/out/.%2e/x.jsonl",
    ],
)
def test_parent_segments_are_refused_after_decoding(uri: str) -> None:
    with pytest.raises(ConfigurationError, match=r"'\.\.'"):
        sink_from_uri(uri)
    with pytest.raises(ConfigurationError, match=r"'\.\.'"):
        dead_letter_from_uri(uri)


@pytest.mark.parametrize("uri", ["sqlite:///state/../../x.db", "sqlite:///state/%2e%2e/x.db"])
def test_parent_segments_are_refused_in_sqlite_uris(uri: str) -> None:
    with pytest.raises(ConfigurationError, match=r"'\.\.'"):
        open_checkpoint_store(uri)


def test_dot_dot_inside_a_name_is_fine(tmp_path: Path) -> None:
    assert isinstance(sink_from_uri(f"file://{tmp_path}/a..b.jsonl"), FileSink)
