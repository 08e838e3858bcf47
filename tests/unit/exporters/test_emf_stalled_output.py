"""A stdout nobody reads never stops the caller of the EMF exporter.

The exporter wrote its documents on the thread that called ``flush()``: the consumer's
periodic flusher, on the event loop's thread.  When the process reading stdout stopped
reading (a log driver, ``consume ... | slow-reader``), ``write()`` blocked and the whole
loop with it: leases went unrenewed and were lost.  Documents now go through a bounded queue
to one writer thread the exporter owns.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from typing import Any

import pytest

from consumers import cli
from shardline.errors import BackgroundTaskError, ConfigurationError
from shardline.exporters import EmfExporter
from shardline.metrics_events import RECORDS_READ

BOUND = 5.0  # seconds; only there so that a regression fails instead of hanging


class StalledStream(io.StringIO):
    """A stdout whose reader stopped: ``write()`` blocks until :meth:`release` (at most BOUND)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.returned = threading.Event()
        self._gate = threading.Event()

    def release(self) -> None:
        self._gate.set()

    def write(self, text: str) -> int:
        self.entered.set()
        self._gate.wait(BOUND)
        self.returned.set()
        return super().write(text)


class FlushSignalling(EmfExporter):
    """Sets ``flushed`` on each flush, so a test can wait for the periodic flusher's next round."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.flushed = asyncio.Event()

    def flush(self, timeout: float = 0.0) -> int:
        queued = super().flush(timeout)
        self.flushed.set()
        return queued


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _shards(out: io.StringIO) -> list[str]:
    return [str(document["Shard"]) for document in _lines(out)]


async def test_the_periodic_flush_keeps_the_loop_running_while_stdout_is_stalled() -> None:
    out = StalledStream()
    exporter = FlushSignalling(stream=out)
    exporter.on_event(RECORDS_READ, 1, stream="s", shard="a")
    flusher = asyncio.create_task(cli._flush_periodically(exporter, 0.001))
    try:
        assert await asyncio.wait_for(asyncio.to_thread(out.entered.wait, BOUND), 2 * BOUND)
        for shard in ("b", "c"):  # the flusher comes round again while write() is blocked
            exporter.on_event(RECORDS_READ, 1, stream="s", shard=shard)
            exporter.flushed.clear()
            await asyncio.wait_for(exporter.flushed.wait(), BOUND)
        # before: the loop itself was blocked inside write() until the gate timed out
        assert not out.returned.is_set()
    finally:
        out.release()
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)
    exporter.close(BOUND)
    assert _shards(out) == ["a", "b", "c"]


def test_a_full_queue_drops_documents_counts_them_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    out = StalledStream()
    exporter = EmfExporter(stream=out, queue_limit=2)
    exporter.on_event(RECORDS_READ, 1, stream="s", shard="first")
    assert exporter.flush(timeout=0) == 1
    assert out.entered.wait(BOUND)  # the writer holds "first" inside write(); the queue is empty
    for shard in ("q1", "q2", "x1"):
        exporter.on_event(RECORDS_READ, 1, stream="s", shard=shard)
    assert exporter.flush(timeout=0) == 2  # two fit; one is dropped, never waited for
    for shard in ("x2", "x3"):
        exporter.on_event(RECORDS_READ, 1, stream="s", shard=shard)
    assert exporter.flush(timeout=0) == 0
    assert not out.returned.is_set()
    assert exporter.documents_dropped == 3
    assert exporter.documents_queued == 3  # "first" in write(), "q1" and "q2" waiting
    warnings = [r for r in caplog.records if "not keeping up" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    out.release()
    exporter.close(BOUND)
    assert _shards(out) == ["first", "q1", "q2"]  # what was kept, in order


def test_flush_waits_until_every_document_is_written_in_order_on_the_writer_thread() -> None:
    writers: list[threading.Thread] = []

    class Recording(io.StringIO):
        def write(self, text: str) -> int:
            writers.append(threading.current_thread())
            return super().write(text)

    out = Recording()
    exporter = EmfExporter(stream=out)
    expected = []
    for round_ in range(20):
        shard = f"shardId-{round_:03d}"
        expected.append(shard)
        exporter.on_event(RECORDS_READ, round_, stream="s", shard=shard)
        exporter.flush(timeout=0)  # queued, not waited for
    exporter.on_event(RECORDS_READ, 1, stream="s", shard="last")
    expected.append("last")
    assert exporter.flush() == 1  # what a Lambda function calls before it returns
    assert _shards(out) == expected  # every document out, in order, when flush() returns
    assert writers and all(t.name == "shardline-emf-writer" and t.daemon for t in writers)
    assert threading.current_thread() not in writers
    exporter.close(BOUND)
    assert not writers[0].is_alive()


def test_a_raising_write_is_logged_and_counted_and_the_exporter_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class FullDiskOnce(io.StringIO):
        failed = False

        def write(self, text: str) -> int:
            if not self.failed:
                self.failed = True
                raise OSError(28, "No space left on device")
            return super().write(text)

    out = FullDiskOnce()
    exporter = EmfExporter(stream=out)
    exporter.on_event(RECORDS_READ, 1, stream="s", shard="lost")
    assert exporter.flush(timeout=BOUND) == 1  # before: the OSError came out of flush()
    assert exporter.documents_failed == 1
    warnings = [r for r in caplog.records if r.getMessage().startswith("writing metrics failed")]
    assert len(warnings) == 1 and "OSError" in warnings[0].getMessage()
    exporter.on_event(RECORDS_READ, 1, stream="s", shard="kept")
    exporter.flush(timeout=BOUND)
    assert _shards(out) == ["kept"]
    exporter.close(BOUND)


def test_a_dead_writer_thread_is_raised_once_and_the_next_flush_starts_another() -> None:
    class Fatal(BaseException):
        pass

    class DiesOnce(io.StringIO):
        died = False

        def write(self, text: str) -> int:
            if not self.died:
                self.died = True
                raise Fatal
            return super().write(text)

    out = DiesOnce()
    exporter = EmfExporter(stream=out)
    exporter.on_event(RECORDS_READ, 1, stream="s", shard="lost")
    exporter.flush(timeout=BOUND)  # returns when the thread died
    exporter.on_event(RECORDS_READ, 1, stream="s", shard="kept")
    with pytest.raises(BackgroundTaskError) as raised:
        exporter.flush(timeout=BOUND)
    assert isinstance(raised.value.__cause__, Fatal)
    assert exporter.flush(timeout=BOUND) == 1  # the metrics were kept; a new writer writes them
    assert _shards(out) == ["kept"]
    assert exporter.documents_failed == 1
    exporter.close(BOUND)


def test_a_queue_of_no_documents_is_refused_as_configuration() -> None:
    with pytest.raises(ConfigurationError, match="queue_limit"):
        EmfExporter(queue_limit=0)
