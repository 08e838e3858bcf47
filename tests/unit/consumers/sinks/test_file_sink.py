"""The JSON-lines file sink, the local dead-letter file and the URI helpers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from consumers.sinks.base import DeadLetterEntry
from consumers.sinks.deadletter import FileDeadLetter
from consumers.sinks.file import FileSink
from consumers.sinks.uri import dead_letter_from_uri, sink_from_uri
from shardline.errors import ConfigurationError
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition


def _record(seq: int, data: bytes = b"payload", shard: str = "shardId-000000000000") -> ConsumedRecord:
    return ConsumedRecord(data=data, partition_key="k", position=KinesisPosition("s", shard, str(seq)))


async def test_file_sink_writes_one_line_per_identity(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = sink_from_uri(f"file://{path}")
    batch = [_record(i, bytes([i])) for i in range(1, 6)]
    await sink.write(batch)
    first = path.read_bytes()
    await sink.write(batch)
    await sink.write(batch[2:])
    assert path.read_bytes() == first
    lines = [json.loads(line) for line in first.splitlines()]
    assert [line["position"]["sequence_number"] for line in lines] == ["1", "2", "3", "4", "5"]
    assert base64.b64decode(lines[0]["data"]) == b"\x01"
    await sink.close()


async def test_file_sink_index_survives_reopen_and_keeps_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = FileSink(path)
    await sink.write([_record(1), _record(2)])
    with path.open("ab") as handle:
        handle.write(b'{"id": "torn')
    before = path.read_bytes()
    reopened = FileSink(path)
    assert path.read_bytes() == before  # opening never truncates
    await reopened.write([_record(2), _record(3)])
    after = path.read_bytes()
    assert after.startswith(before)  # append-only
    lines = after.splitlines()
    assert lines[2] == b'{"id": "torn'  # kept, and ended so the next line stands alone
    ids = [json.loads(line)["id"] for line in lines[:2] + lines[3:]]
    assert ids == [_record(1).identity, _record(2).identity, _record(3).identity]
    assert reopened.stats.duplicates == 1 and reopened.stats.written == 1


@pytest.mark.parametrize("kind", ["sink", "dead letter"])
async def test_a_file_whose_first_write_was_torn_is_taken_on_by_every_later_run(
    tmp_path: Path, kind: str
) -> None:
    """A job killed while writing its very first line was resumed once, then refused for good."""
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"data":"eA==","id":"s/shardId-0/1","posit')  # the first write, torn
    await FileSink(path).write([_record(1), _record(2)])  # the resumed run ends the torn line
    lines = path.read_bytes().splitlines()
    assert lines[0] == b'{"data":"eA==","id":"s/shardId-0/1","posit' and len(lines) == 3
    # before: "exists and is not a Shardline JSON-lines file" for every run after the resumed one
    if kind == "sink":
        again = FileSink(path)
        await again.write([_record(2), _record(3)])
        assert (again.stats.duplicates, again.stats.written) == (1, 1)
    else:
        dead_letter_from_uri(f"file://{path}")
    foreign = tmp_path / "notes.jsonl"
    foreign.write_bytes(b'{"torn": "notes\n{"other": "program"}\n')  # no line of ours after it
    with pytest.raises(ConfigurationError, match="not a Shardline JSON-lines file"):
        FileSink(foreign)


async def test_file_sink_duplicates_inside_one_batch_are_written_once(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    kafka = ConsumedRecord(data=b"x", partition_key="", position=KafkaPosition("t", 0, 7))
    sink = FileSink(path)
    await sink.write([kafka, kafka, _record(1)])
    assert len(path.read_bytes().splitlines()) == 2


async def test_dead_letter_file_records_metadata(tmp_path: Path) -> None:
    path = tmp_path / "dlq.jsonl"
    dead = dead_letter_from_uri(f"file://{path}")
    assert isinstance(dead, FileDeadLetter)
    entry = DeadLetterEntry(_record(9, b"\xff"), reason="bad", error_type="ValidationError", attempts=3)
    await dead.put([entry])
    await dead.put([entry])
    (line,) = path.read_bytes().splitlines()
    parsed = json.loads(line)
    assert parsed["reason"] == "bad" and parsed["error_type"] == "ValidationError"
    assert parsed["attempts"] == 3
    assert parsed["position"] == {
        "stream": "s",
        "shard_id": "shardId-000000000000",
        "sequence_number": "9",
        "sub_sequence_number": 0,
    }
    assert base64.b64decode(parsed["data"]) == b"\xff"


@pytest.mark.parametrize("uri", ["nope:x", "gopher://x", "file://host/x.jsonl", "file:///dir/"])
def test_bad_uris_are_rejected_before_any_io(uri: str) -> None:
    with pytest.raises(ConfigurationError):
        sink_from_uri(uri)


@pytest.mark.parametrize("uri", ["fle:readings.jsonl", "dynamo:readings", "dynamo://readings"])
def test_a_misspelt_sink_scheme_is_named_with_the_known_ones(uri: str) -> None:
    # without "//" it was "not a sink URI (expected scheme://...)", though file:x.jsonl needs none
    with pytest.raises(ConfigurationError, match=r"unknown sink scheme '(fle|dynamo)'; known: dynamodb, f"):
        sink_from_uri(uri)


def test_bad_dead_letter_scheme() -> None:
    with pytest.raises(ConfigurationError):
        dead_letter_from_uri("dynamodb://t")
