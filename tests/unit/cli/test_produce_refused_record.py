"""``shardline produce``: a line the producer refuses before sending fails alone.

A raw line over the stream's record size made ``send`` raise RecordTooLargeError, which
ended the whole command: the lines after it were never read or sent, and no summary said
how many had been.  It is now one failed record, counted by type and reported by ``--acks``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

import producers.cli
from producers.cli import EXIT_BAD_INPUT, command
from shardline.errors import RecordTooLargeError

LIMIT = 10


class _FakeOpen:
    """Stands for the producer TARGET names: refuses long records as the real one does."""

    def __init__(self, *args: object) -> None:
        self.sent: list[bytes] = []
        self.max_record_bytes = None  # every line reaches send(), which refuses the long one

    async def __aenter__(self) -> Callable[[bytes, str | None], Any]:
        async def send(data: bytes, key: str | None) -> asyncio.Future[Any]:
            if len(data) > LIMIT:
                raise RecordTooLargeError(f"record of {len(data)} bytes exceeds the maximum of {LIMIT}")
            self.sent.append(data)
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result(argparse.Namespace(partition=0, offset=len(self.sent) - 1))
            return done

        return send

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def test_an_oversize_line_fails_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    opened: list[_FakeOpen] = []

    def fake_open(*args: object) -> _FakeOpen:
        opened.append(_FakeOpen(*args))
        return opened[-1]

    monkeypatch.setattr(producers.cli, "_open", fake_open)
    monkeypatch.setattr(
        sys, "stdin", argparse.Namespace(buffer=io.BytesIO(b"one\n" + b"x" * 50 + b"\nthree\n"))
    )
    parser = argparse.ArgumentParser()
    command.configure(parser)
    status = command.run(parser.parse_args(["kafka://127.0.0.1:9092/t", "--acks"]))
    out, err = capsys.readouterr()
    assert opened[0].sent == [b"one", b"three"]
    acks = sorted((json.loads(line) for line in out.splitlines()), key=lambda ack: ack["line"])
    assert acks[1] == {"line": 2, "error": "RecordTooLargeError"}
    assert "offset" in acks[0] and "offset" in acks[2]
    assert "3 sent, 2 acknowledged, 1 failed (RecordTooLargeError: 1)" in err
    assert status == EXIT_BAD_INPUT  # refused input, not a delivery failure
