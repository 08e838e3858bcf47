"""Input lines for ``shardline produce``: numbered, bounded in length, read off the event loop.

Stdin is read by a daemon thread, so a person typing sees each line sent as soon as it is
entered and a stop request never waits for input; the lines are cut here, where a line too
long for any record is counted rather than held.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
from collections.abc import AsyncGenerator, Iterator
from typing import BinaryIO, NamedTuple, TypeAlias

__all__ = ["Line", "LineCutShort", "LineTooLong", "read_lines"]

_READ_CHUNK = 1 << 16


class LineTooLong(NamedTuple):
    """A line longer than any record may be: only its length was kept, never its bytes."""

    size: int


class LineCutShort(NamedTuple):
    """The start of a line whose end had not been read when a stop request came."""

    size: int


Line: TypeAlias = bytes | LineTooLong | LineCutShort


async def read_lines(
    stream: BinaryIO, stop: asyncio.Event, *, max_line_bytes: int | None = None
) -> AsyncGenerator[tuple[int, Line], None]:
    """``(line number, line without its line break)`` for each non-empty line of ``stream``.

    A daemon thread reads whatever is available (``read1``), so piped input arrives in large
    chunks while a person typing sees each line sent as soon as it is entered, and a stop
    request is honoured at once even while the thread still waits for input.  After a stop
    nothing more is read from ``stream``, and what was read is still split and yielded (it is
    gone from the pipe): a line it ends in the middle of comes as :class:`LineCutShort`.  (The
    stop was noticed only when the queue of chunks ran dry: input that kept coming was read
    and sent past the Ctrl-C, and the chunks still queued when it was noticed were dropped,
    read from stdin but never sent or counted.)

    A line of more than ``max_line_bytes`` (not counting a CR before its LF) comes as
    :class:`LineTooLong`: its bytes are dropped as they arrive, so a file without line breaks
    costs no more memory than one record, and each chunk is searched once (the whole pending
    line was copied and searched again with every chunk, quadratic in a long line's length).
    """
    chunks: asyncio.Queue[bytes | BaseException] = asyncio.Queue(maxsize=16)
    pump = _Pump(stream, chunks, asyncio.get_running_loop())
    pump.start()
    stopped = asyncio.ensure_future(stop.wait())
    lines = _Splitter(max_line_bytes)
    taken = 0
    try:
        while True:
            if stop.is_set():  # what was read is still split; nothing more is read
                if taken == pump.halt():
                    cut = lines.cut_short()
                    if cut is not None:
                        yield cut
                    return
                chunk = await chunks.get()  # read before the halt, and on its way into the queue
            else:
                getter = asyncio.ensure_future(chunks.get())
                await asyncio.wait({getter, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    continue
                chunk = getter.result()
            taken += 1
            if isinstance(chunk, BaseException):
                raise chunk
            if not chunk:
                break
            for item in lines.feed(chunk):
                yield item
        last = lines.last()
        if last is not None:
            yield last
    finally:
        pump.halt()
        stopped.cancel()


class _Pump:
    """The daemon thread that reads ``stream`` into ``chunks``, and stops reading on request.

    With a file descriptor it waits for input (``select``) before it reads, and reads under a
    lock that :meth:`halt` takes: a read is then never blocked, and once :meth:`halt` returns
    none is in progress, so its count of chunks is final and each of them reaches the queue.
    A self-pipe wakes the wait.  A stream without one (a test's ``BytesIO``) is read directly.
    """

    def __init__(
        self, stream: BinaryIO, chunks: asyncio.Queue[bytes | BaseException], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._read = getattr(stream, "read1", stream.read)
        self._chunks = chunks
        self._loop = loop
        self._lock = threading.Lock()
        self._halted = False
        self._count = 0
        self._fd = _fileno(stream)
        self._wake: tuple[int, int] | None = os.pipe() if self._fd is not None else None

    def start(self) -> None:
        threading.Thread(target=self._run, name="shardline-produce-stdin", daemon=True).start()

    def halt(self) -> int:
        """Read nothing more; the number of chunks read, every one of them queued or on its way."""
        with self._lock:
            if not self._halted:
                self._halted = True
                if self._wake is not None:
                    os.write(self._wake[1], b"\0")
            return self._count

    def _run(self) -> None:
        try:
            while self._read_one():
                pass
        finally:
            with self._lock:
                if self._wake is not None:
                    os.close(self._wake[0])
                    os.close(self._wake[1])
                    self._wake = None

    def _read_one(self) -> bool:
        """Read and queue one chunk; whether to go on."""
        if self._fd is not None and self._wake is not None:
            try:
                select.select([self._fd, self._wake[0]], [], [])
            except (OSError, ValueError):  # not a descriptor select takes: read directly
                self._fd = None
        if self._fd is not None:
            with self._lock:
                if self._halted:
                    return False
                chunk = self._take()
        elif self._halted:
            return False
        else:  # a read may be in progress at the halt: its chunk may come after the count
            chunk = self._take()
        put = self._chunks.put(chunk)
        try:
            future = asyncio.run_coroutine_threadsafe(put, self._loop)
        except RuntimeError:  # the loop is closed: nobody wants more input
            put.close()  # never scheduled: close it rather than leave it unawaited
            return False
        try:
            future.result()
        except BaseException:  # noqa: BLE001 - the loop is gone: nobody wants more input
            return False
        return bool(chunk) and not isinstance(chunk, BaseException)

    def _take(self) -> bytes | BaseException:
        try:
            chunk: bytes | BaseException = self._read(_READ_CHUNK)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading coroutine
            chunk = exc
        self._count += 1
        return chunk


def _fileno(stream: BinaryIO) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation: no descriptor
        return None


class _Splitter:
    """Cuts chunks of input into numbered lines, holding at most ``max_line_bytes + 1`` bytes
    of an unfinished one."""

    __slots__ = ("_keep", "_limit", "_number", "_partial", "_size")

    def __init__(self, max_line_bytes: int | None) -> None:
        self._limit = max_line_bytes
        self._keep = None if max_line_bytes is None else max_line_bytes + 1  # room for a CR
        self._number = 0
        self._partial = bytearray()
        self._size = 0  # bytes of the unfinished line, kept or dropped

    def feed(self, chunk: bytes) -> Iterator[tuple[int, Line]]:
        *ends, rest = chunk.split(b"\n")
        for piece in ends:
            if self._size:
                self._add(piece)
                item = self._finish()
            else:  # a whole line in this chunk: no copy into the buffer
                item = self._line(piece, len(piece))
            if item is not None:
                yield item
        self._add(rest)

    def last(self) -> tuple[int, Line] | None:
        """The line the input ended in without a line break, if any."""
        return self._finish() if self._size else None

    def cut_short(self) -> tuple[int, Line] | None:
        """The line the input was stopped in the middle of, if it had begun."""
        if not self._size or not (self._too_long() or self._partial.rstrip(b"\r")):
            return None
        return self._number + 1, LineCutShort(self._size)

    def _add(self, piece: bytes) -> None:
        self._size += len(piece)
        if not self._too_long():
            self._partial += piece
        elif self._partial:
            self._partial.clear()

    def _too_long(self) -> bool:
        return self._keep is not None and self._size > self._keep

    def _finish(self) -> tuple[int, Line] | None:
        item = self._line(bytes(self._partial), self._size)
        self._partial.clear()
        self._size = 0
        return item

    def _line(self, kept: bytes, size: int) -> tuple[int, Line] | None:
        self._number += 1
        if self._keep is not None and size > self._keep:
            return self._number, LineTooLong(size)
        line = kept.rstrip(b"\r")
        if self._limit is not None and len(line) > self._limit:
            return self._number, LineTooLong(len(line))
        return (self._number, line) if line else None
