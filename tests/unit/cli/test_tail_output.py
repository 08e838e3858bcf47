"""How `shardline tail` prints records: JSON lines or readable lines, payloads as text or base64."""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import pytest

from consumers.tail.cli import _kafka_start, _print, command
from consumers.tail.output import as_json, as_text, payload
from shardline.errors import ConfigurationError
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition

ARRIVAL = datetime(2026, 12, 1, 8, 0, 0, 250000, tzinfo=UTC)


def _kinesis(data: bytes, sub: int = 0) -> ConsumedRecord:
    return ConsumedRecord(data, "dev-1", KinesisPosition("s", "shardId-000000000001", "4960", sub), ARRIVAL)


def test_json_line_has_every_field_and_text_payload() -> None:
    row = json.loads(as_json(_kinesis(b'{"t": 21.5}', sub=3)))
    assert row == {
        "key": "dev-1",
        "shard": "shardId-000000000001",
        "sequence": "4960",
        "sub_sequence": 3,
        "arrival": "2026-12-01T08:00:00.250+00:00",
        "payload": '{"t": 21.5}',
        "encoding": "utf-8",
    }


def test_binary_payloads_are_base64_and_modes_are_honoured() -> None:
    blob = b"\xff\x00\x01"
    row = json.loads(as_json(_kinesis(blob)))
    assert row["encoding"] == "base64" and base64.b64decode(row["payload"]) == blob
    assert payload(b"abc", "base64") == ("YWJj", "base64")
    assert payload(blob, "utf-8") == ("\ufffd\x00\x01", "utf-8")


def test_kafka_positions_and_the_readable_form() -> None:
    record = ConsumedRecord(b"line\nbreak", "k", KafkaPosition("t", 2, 41), ARRIVAL)
    row = json.loads(as_json(record))
    assert (row["topic"], row["partition"], row["offset"]) == ("t", 2, 41) and "shard" not in row
    assert as_text(record) == "2026-12-01T08:00:00.250+00:00  t/2@41  key=k  line\\nbreak"
    assert as_text(_kinesis(b"\xff", sub=2)).endswith("shardId-000000000001 4960:2  key=dev-1  base64:/w==")


HOSTILE = "ok\x1b]0;owned\x07\x1b[2J\rhidden\x7f\u009b[1m é\ttab"


def test_control_characters_from_the_stream_reach_the_terminal_escaped() -> None:
    """Escape sequences in a payload or a key could retitle the window, clear the screen or
    rewrite a line on the operator's terminal; they are printed as text instead."""
    record = ConsumedRecord(
        HOSTILE.encode(), "key\x1b[31m", KinesisPosition("s", "shardId-000000000000", "7")
    )
    line = as_text(record)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in line)
    assert "\\x1b]0;owned\\x07" in line and "key=key\\x1b[31m" in line and "é" in line
    document = as_json(record)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in document)
    parsed = json.loads(document)
    assert parsed["payload"] == HOSTILE and parsed["key"] == "key\x1b[31m"  # JSON keeps them exactly


def test_a_kafka_key_that_is_not_utf8_prints_on_a_strict_utf8_terminal() -> None:
    """The key keeps its bytes through surrogateescape; a stdout with errors='strict' (the
    default under an en_US.UTF-8 locale) raised UnicodeEncodeError on the lone surrogates."""
    key = b"\xff\xfedev".decode("utf-8", "surrogateescape")
    record = ConsumedRecord(b"payload", key, KafkaPosition("t", 0, 5))
    line, document = as_text(record), as_json(record)
    line.encode("utf-8")
    document.encode("utf-8")
    assert "key=\\xff\\xfedev" in line
    assert json.loads(document)["key"] == key  # the exact key, bytes and all


def test_a_kafka_start_offset_past_int64_is_refused_before_any_connection() -> None:
    """librdkafka takes an int64 offset; a larger one raised OverflowError at assignment."""
    with pytest.raises(ConfigurationError, match="from 0 to"):
        _kafka_start(f"offset:{2**63}")
    with pytest.raises(ConfigurationError, match="from 0 to"):
        _kafka_start("offset:-1")
    assert _kafka_start(f"offset:{2**63 - 1}").offset == 2**63 - 1


LAYOUT = "dev\u202e1-ved\u2066x\u2069\u200f\u061c\u2028forged line\u2029"


def test_bidirectional_overrides_and_line_separators_are_printed_escaped() -> None:
    """An override in a key (U+202E) showed the rest of the line, payload included, reversed
    on a terminal that lays out bidirectional text, and U+2028 broke one record into two
    lines in viewers that honour it; they passed through both output formats as they were."""
    record = ConsumedRecord(LAYOUT.encode(), LAYOUT, KinesisPosition("s", "shardId-000000000000", "7"))
    marks = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029}
    line, document = as_text(record), as_json(record)
    assert not any(ord(c) in marks for c in line + document)
    assert "key=dev\\u202e1-ved\\u2066x\\u2069\\u200f\\u061c\\u2028forged line\\u2029  " in line
    parsed = json.loads(document)
    assert parsed["key"] == LAYOUT and parsed["payload"] == LAYOUT  # JSON keeps them exactly


class _Follower:
    async def stop(self) -> None:
        return None


async def _records(*records: ConsumedRecord) -> AsyncGenerator[ConsumedRecord, None]:
    for record in records:
        yield record


@pytest.mark.parametrize("output_format", ["json", "text"])
@pytest.mark.parametrize("encoding", ["latin-1", "ascii"])
async def test_an_output_that_is_not_utf8_gets_every_record(
    output_format: str, encoding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a locale that is not UTF-8, the first record with a character the output could
    not encode raised UnicodeEncodeError out of the write: a traceback, and no more records."""
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding=encoding))
    payloads = ["price: 5 €", "smile 😀", "plain"]
    records = [
        ConsumedRecord(text.encode(), "kéy", KafkaPosition("t", 0, n)) for n, text in enumerate(payloads)
    ]
    parser = argparse.ArgumentParser()
    command.configure(parser)
    args = parser.parse_args(["kafka://h:9092/t", "--format", output_format])
    assert await _print(args, _Follower(), _records(*records)) == 0
    lines = raw.getvalue().decode(encoding).splitlines()
    assert len(lines) == 3
    if output_format == "json":
        assert [json.loads(line)["payload"] for line in lines] == payloads  # the exact text
    else:
        assert lines[0].endswith("5 \\u20ac") and lines[1].endswith("smile \\U0001f600")
        key = "k\\xe9y" if encoding == "ascii" else "kéy"  # Latin-1 has é
        assert lines[2].endswith(f"key={key}  plain")


def test_tail_with_stdout_closed_is_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Started with `>&-`, Python's stdout is None: the first record raised AttributeError."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setattr(sys, "stdout", None)
    parser = argparse.ArgumentParser()
    command.configure(parser)
    assert command.run(parser.parse_args(["kinesis://s"])) == 2
    assert (
        capsys.readouterr().err == "shardline tail: stdout is closed: there is nowhere to print the records\n"
    )
