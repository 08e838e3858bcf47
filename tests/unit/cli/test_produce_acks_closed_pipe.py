"""``shardline produce --acks | head``: a closed stdout stops the ack lines, not the records.

Each ack line is written by a callback of the record's future; once the reader of the pipe
had gone, every later callback raised BrokenPipeError, which the event loop logged with a
traceback, once per record (about 2,800 tracebacks for 3,000 lines piped to ``head -2``).
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from typing import Any

import pytest

from producers.cli import ProduceSummary, _Reporter


async def test_acks_to_a_closed_pipe_are_dropped_quietly_and_every_record_counted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)  # the reader (`head`) is gone
    closed = io.TextIOWrapper(io.FileIO(write_fd, "wb"), write_through=True)
    monkeypatch.setattr(sys, "stdout", closed)
    loop = asyncio.get_running_loop()
    logged: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: logged.append(context))
    summary = ProduceSummary()
    reporter = _Reporter(summary, print_acks=True)
    try:
        for line in range(1, 51):
            future: asyncio.Future[Any] = loop.create_future()
            reporter.track(line, future)
            future.set_result(type("Ack", (), {"partition": 0, "offset": line})())
        await asyncio.wait_for(reporter.settled.wait(), timeout=5)
    finally:
        loop.set_exception_handler(None)
        closed.close()
    assert logged == []
    assert (summary.sent, summary.acknowledged, summary.failed) == (50, 50, 0)
    assert capsys.readouterr().err.count("stdout closed") == 1
