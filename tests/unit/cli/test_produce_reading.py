"""``shardline produce``: every line read from stdin is sent, skipped or failed, and counted.

A line too long for any record is counted without being held; a stop still sends the lines
already read; a read error or a producer that dies ends the run with its summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import threading
import tracemalloc

import pytest

from producers.cli import EXIT_BAD_INPUT, read_lines
from shardline.errors import BackgroundTaskError
from shardline.interrupts import INTERRUPTED
from tests.unit.cli.produce_target import Target, run_produce

CHUNK = b"x" * (1 << 16)


class _Endless(io.RawIOBase):
    """``chunks`` chunks of one line with no line break, then ``tail``: the same bytes object
    each time, so only what the reader keeps of them costs memory."""

    def __init__(self, chunks: int, tail: bytes) -> None:
        self._left = chunks
        self._tail = tail

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        if self._left:
            self._left -= 1
            return CHUNK
        tail, self._tail = self._tail, b""
        return tail


def test_a_line_longer_than_a_record_is_counted_not_held(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line was held whole, and copied and searched again with each chunk: a 16 MiB line
    (a file without line breaks, `cat image.png |`) took 16 MiB and seconds, a few GiB took
    the machine's memory, before the producer refused it for its size."""
    target = Target(max_record_bytes=1 << 16)
    stdin = _Endless(256, b"\nafter\n")  # a 16 MiB first line
    tracemalloc.start()
    try:
        status = run_produce(monkeypatch, target, stdin, "--acks")  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    out, err = capsys.readouterr()
    assert target.sent == [(b"after", None)]
    assert '{"line":1,"error":"MessageTooLargeError"}' in out.splitlines()
    assert "2 sent, 1 acknowledged, 1 failed (MessageTooLargeError: 1)" in err
    assert status == EXIT_BAD_INPUT


async def test_line_lengths_are_counted_across_chunks() -> None:
    """The limit counts a line's bytes wherever the chunks cut it, a CR before its LF aside."""

    async def lines(data: bytes, limit: int) -> list[tuple[int, object]]:
        return [item async for item in read_lines(io.BytesIO(data), asyncio.Event(), max_line_bytes=limit)]

    found = await lines(b"1234\r\n12345\n" + b"y" * (1 << 17) + b"\n  ", 4)
    assert [(number, type(line).__name__) for number, line in found] == [
        (1, "bytes"),
        (2, "LineTooLong"),
        (3, "LineTooLong"),
        (4, "bytes"),
    ]
    assert found[0][1] == b"1234" and found[1][1] == (5,) and found[2][1] == ((1 << 17),)
    assert found[3][1] == b"  "  # a last line without a line break is sent as the same line with one


async def test_a_stop_sends_the_lines_already_read() -> None:
    """Chunks the reading thread had taken from stdin were dropped at the stop, unsent and
    uncounted (they are gone from the pipe); the line a chunk ends inside is reported."""
    read_fd, write_fd = os.pipe()
    stop = asyncio.Event()
    with open(read_fd, "rb", buffering=0) as pipe, open(write_fd, "wb", buffering=0) as writer:
        writer.write(b"one\ntwo\nthree\npart")  # one chunk, and the pipe stays open
        lines = read_lines(pipe, stop)
        assert await asyncio.wait_for(anext(lines), timeout=5) == (1, b"one")
        stop.set()
        rest = [item async for item in lines]
    assert [(number, bytes(line) if isinstance(line, bytes) else line) for number, line in rest] == [
        (2, b"two"),
        (3, b"three"),
        (4, (4,)),
    ]
    assert type(rest[-1][1]).__name__ == "LineCutShort"


class _FailsAfter(io.RawIOBase):
    """Gives ``data``, then fails as a terminal that hung up does (EIO)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        if self._data:
            data, self._data = self._data, b""
            return data
        raise OSError(5, "Input/output error")


def test_a_failed_read_of_stdin_ends_with_the_summary(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The OSError came out of the command as a traceback: the records were delivered by
    the producer's close, but no summary said so."""
    target = Target()
    status = run_produce(monkeypatch, target, _FailsAfter(b"a\nb\n"))  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert target.sent == [(b"a", None), (b"b", None)]
    assert "reading stdin failed after line 2: [Errno 5] Input/output error" in err
    assert "2 sent, 2 acknowledged, 0 failed" in err
    assert status == 1


def test_a_producer_that_dies_ends_with_the_summary(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """send() of a dead producer raises (BackgroundTaskError, ClosedError): the command
    printed that error alone, not how many records had been acknowledged before it."""
    target = Target(dies_at=3, dies_with=BackgroundTaskError("the sender died"))
    status = run_produce(monkeypatch, target, b"a\nb\nc\nd\n", "--acks")
    out, err = capsys.readouterr()
    assert [line for line, _ in target.sent] == [b"a", b"b"] and target.closed
    assert out.splitlines()[-1] == '{"line":3,"error":"BackgroundTaskError"}'
    assert err.splitlines() == [
        "shardline produce: BackgroundTaskError: the sender died; stopped reading after line 3",
        "shardline produce: 3 sent, 2 acknowledged, 1 failed (BackgroundTaskError: 1)",
    ]
    assert status == 1


TOTAL = 10_000


def _numbered(n: int) -> bytes:
    return b"%06d" % n + b"." * 1017 + b"\n"  # 1 KiB


def test_sigterm_stops_input_that_keeps_coming_and_loses_no_line_read(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stop was noticed only when the queue of chunks ran dry: input that kept coming
    (10 MiB here) was read and sent to its end after SIGTERM.  Now reading ends at once, every
    line read is sent, and stdin continues right after the last line the summary names."""
    read_fd, write_fd = os.pipe()

    def write() -> None:
        with open(write_fd, "wb") as out, contextlib.suppress(BrokenPipeError):
            for n in range(1, TOTAL + 1):
                out.write(_numbered(n))

    writer = threading.Thread(target=write, daemon=True)
    writer.start()

    async def signal_at_second(call: int) -> None:
        if call == 2:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0)  # the handler runs on the loop

    target = Target(before_send=signal_at_second)
    with open(read_fd, "rb") as stdin:
        status = run_produce(monkeypatch, target, stdin)
        rest = stdin.read()  # what the command left in the pipe, to the writer's end
    writer.join(timeout=30)
    sent = [int(data[:6]) for data, _ in target.sent]
    last = len(sent)
    assert sent == list(range(1, last + 1)) and last < TOTAL
    err = capsys.readouterr().err
    cut = re.search(r"line (\d+) was cut short by the stop \((\d+) bytes read\); skipped", err)
    if cut is None:
        assert rest[:6] == b"%06d" % (last + 1)
    else:
        assert int(cut[1]) == last + 1 and rest.startswith(_numbered(last + 1)[int(cut[2]) :])
    assert f"interrupted after input line {last}: no later line was sent" in err
    assert status == INTERRUPTED
