"""``shardline produce``: input it cannot send is refused line by line, named, counted, and
given its own exit status, apart from records the target did not take."""

from __future__ import annotations

import argparse
import sys

import pytest

import producers.cli
from producers.cli import EXIT_BAD_INPUT, command
from tests.unit.cli.produce_target import Target, run_produce

NDJSON_BY_DEVICE = ("--format", "ndjson", "--key", "field:device")


def test_lines_that_are_not_strict_json_are_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """json.loads of bytes took NaN, Infinity, a byte order mark and an encoded lone
    surrogate, so those lines went out as checked JSON that strict readers refuse; a deeply
    nested line raised RecursionError, ending the command with a traceback and no summary."""
    lines = [
        b'{"t": NaN}',
        b"[Infinity]",
        b'\xef\xbb\xbf{"t": 1}',
        b'{"t": "\xed\xa0\x80"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"t": "\xff"}',
        b'{"t": 21.5}',
    ]
    target = Target()
    status = run_produce(monkeypatch, target, b"\n".join(lines) + b"\n", "--format", "ndjson")
    err = capsys.readouterr().err
    assert target.sent == [(b'{"t": 21.5}', None)]
    for number, why in [
        (1, "is not JSON"),
        (2, "is not JSON"),
        (3, "starts with a byte order mark"),
        (4, "is not UTF-8"),
        (5, "is JSON nested too deeply"),
        (6, "is not UTF-8"),
    ]:
        assert f"line {number} {why}; skipped" in err
    assert "1 sent, 1 acknowledged, 0 failed, 6 input line(s) skipped" in err
    assert status == EXIT_BAD_INPUT


def test_a_field_key_needs_a_json_object(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """keys.field reads an attribute of a value that is not a mapping: `[1, 2]` under --key
    field:count went out keyed "<built-in method count of list object at 0x...>"."""
    target = Target()
    stdin = b'[1, 2]\n"text"\n7\n{"count": "dev-1"}\n'
    status = run_produce(monkeypatch, target, stdin, "--format", "ndjson", "--key", "field:count")
    err = capsys.readouterr().err
    assert target.sent == [(b'{"count": "dev-1"}', "dev-1")]
    for number in (1, 2, 3):
        assert f"line {number} is not a JSON object, so it has no field to key on; skipped" in err
    assert status == EXIT_BAD_INPUT


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (b'"dev-1"', "dev-1"),
        (b"42", "42"),
        (b"2.5", "2.5"),
        (b"true", None),
        (b'{"id": 1}', None),
        (b"[1]", None),
        (b"null", None),
    ],
)
def test_a_field_value_is_a_key_only_when_it_spells_one(
    value: bytes, key: str | None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """str() of the value was the key: "True", "{'id': 1}" and "[1]" are Python's spellings,
    which no other writer of the stream computes for the same device."""
    target = Target()
    status = run_produce(monkeypatch, target, b'{"device": ' + value + b"}\n", *NDJSON_BY_DEVICE)
    err = capsys.readouterr().err
    if key is None:
        assert target.sent == [] and status == EXIT_BAD_INPUT
        assert "line 1 has no usable key (field 'device' " in err
    else:
        assert [sent_key for _, sent_key in target.sent] == [key] and status == 0


def test_refused_input_and_lost_records_exit_differently(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Skipped lines exited 0, the same as a clean run, and a record refused for its size 1,
    the same as one the target did not deliver."""
    assert run_produce(monkeypatch, Target(), b"a\nb\n") == 0
    assert run_produce(monkeypatch, Target(), b"{}\nnot json\n", "--format", "ndjson") == EXIT_BAD_INPUT
    small = Target(max_record_bytes=4)
    assert run_produce(monkeypatch, small, b"ok\nmuch too long\n") == EXIT_BAD_INPUT
    assert small.sent == [(b"ok", None)]
    assert "(MessageTooLargeError: 1)" in capsys.readouterr().err
    lossy = Target(max_record_bytes=4, undelivered=2)
    assert run_produce(monkeypatch, lossy, b"ok\nlost\nmuch too long\n") == 1  # loss outweighs
    assert "3 sent, 1 acknowledged, 2 failed (MessageTooLargeError: 1, TransientServiceError: 1)" in (
        capsys.readouterr().err
    )


def test_closed_stdin_or_stdout_is_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Started with `<&-` (or `>&-` and --acks), Python's stream is None: reading it raised
    AttributeError with a traceback once the producer was already started."""
    target = Target()
    monkeypatch.setattr(producers.cli, "_open", target.opener)
    parser = argparse.ArgumentParser()
    command.configure(parser)
    monkeypatch.setattr(sys, "stdin", None)
    assert command.run(parser.parse_args(["kafka://127.0.0.1:9/t"])) == 2
    assert capsys.readouterr().err == "shardline produce: stdin is closed: there are no lines to send\n"
    monkeypatch.setattr(sys, "stdin", argparse.Namespace(buffer=None))
    monkeypatch.setattr(sys, "stdout", None)
    assert command.run(parser.parse_args(["kafka://127.0.0.1:9/t", "--acks"])) == 2
    assert "--acks prints to stdout, which is closed" in capsys.readouterr().err
    assert target.calls == 0


def test_without_acks_a_closed_stdout_is_no_matter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The final flush of a None stdout raised AttributeError after every record was
    delivered: exit 1, a traceback, and no summary."""
    monkeypatch.setattr(sys, "stdout", None)
    target = Target()
    assert run_produce(monkeypatch, target, b"a\nb\n") == 0
    assert target.sent == [(b"a", None), (b"b", None)]
    assert capsys.readouterr().err == "shardline produce: 2 sent, 2 acknowledged, 0 failed\n"
