"""A skipped archive line or object is logged by its key and line number, never by content.

The summary of a backfill over thousands of objects said how many lines were skipped, not
where: the reader logged nothing for a malformed line, and ``shardline replay`` set up no
logging, so the one warning it had (an unreadable object) reached stderr without its key.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.replay.ranges import S3ArchiveReader
from consumers.sinks.firehose import encode_line
from shardline.cli import main
from shardline.logformat import JsonLogFormatter, TextLogFormatter
from shardline.records import ConsumedRecord, KinesisPosition
from tests.unit.consumers.archive_doubles import ArchiveBucket

SECRET = b"secret-payload-7f3a"


def _line(i: int) -> bytes:
    return encode_line(
        ConsumedRecord(json.dumps({"i": i}).encode(), "k", KinesisPosition("s", "shardId-0", str(i)))
    )


async def test_malformed_lines_are_logged_once_per_object_by_key_and_line_number(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = _line(0) + b"not json " + SECRET + b"\n" + _line(1) + b'{"x": "' + SECRET + b'"}\n' + _line(2)
    reader = S3ArchiveReader(ArchiveBucket({"2024/05/o": data}), "b", max_line_bytes=1024)
    with caplog.at_level(logging.WARNING, logger="consumers.replay.ranges"):
        records = [r async for batch, _ in reader.read("2024/05/o", None) for r in batch]
    assert len(records) == 3 and reader.malformed == 2
    [warning] = [r for r in caplog.records if r.name == "consumers.replay.ranges"]
    assert vars(warning)["key"] == "2024/05/o"
    assert vars(warning)["lines"] == 2 and vars(warning)["line_numbers"] == "2,4"
    assert SECRET.decode() not in JsonLogFormatter().format(warning)


async def test_an_unreadable_object_is_logged_with_the_line_it_stopped_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = gzip.compress(b"".join(_line(i) for i in range(200)))[:-40]
    reader = S3ArchiveReader(ArchiveBucket({"o.gz": data}), "b")
    with caplog.at_level(logging.WARNING, logger="consumers.replay.ranges"):
        read = sum([len(batch) async for batch, _ in reader.read("o.gz", None)])
    [warning] = [r for r in caplog.records if r.name == "consumers.replay.ranges"]
    assert vars(warning)["key"] == "o.gz" and vars(warning)["after_line"] == read
    assert "truncated" in vars(warning)["reason"]


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.mark.usefixtures("restored_logging")
def test_replay_sets_up_the_shared_log_lines(tmp_path: Path) -> None:
    sink = f"file://{tmp_path / 'out.jsonl'}"
    # refused before any network call, after logging was set up
    assert main(["replay", "s3://b/p/", "--name", "x", "--sink", sink, "--concurrency", "0"]) == 2
    formatters = [handler.formatter for handler in logging.getLogger().handlers]
    assert any(isinstance(f, JsonLogFormatter | TextLogFormatter) for f in formatters)
