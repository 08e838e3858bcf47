"""`shardline produce --acks | head`: a closed stdout ends the ack lines, not the command.

The ack line is written from each record's done callback; once the reader was gone every
callback raised BrokenPipeError into the event loop's handler (a traceback per record).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest

from producers.cli import ProduceSummary, _Reporter
from shardline.records import Ack

BOUND = 5.0  # seconds; only there so that a hang fails instead of sticking


async def test_acks_to_a_closed_pipe_stop_printing_and_every_record_is_still_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`head`) has gone
    with open(write_end, "w", buffering=1) as closed_pipe:
        monkeypatch.setattr(sys, "stdout", closed_pipe)
        loop = asyncio.get_running_loop()
        raised: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _, context: raised.append(context))
        try:
            summary = ProduceSummary()
            reporter = _Reporter(summary, print_acks=True)
            for line in range(1, 6):
                future: asyncio.Future[Ack] = loop.create_future()
                reporter.track(line, future)
                future.set_result(Ack("shardId-000000000000", str(line)))
            await asyncio.wait_for(reporter.settled.wait(), BOUND)
            sys.stdout.flush()  # the command's last flush: quiet now
        finally:
            loop.set_exception_handler(None)
    assert raised == []  # before: one BrokenPipeError per record
    assert (summary.sent, summary.acknowledged, summary.failed) == (5, 5, 0)
    assert not reporter.print_acks
