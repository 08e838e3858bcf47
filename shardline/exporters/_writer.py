"""Lines written on one thread of their own, so a stalled output never stalls the caller.

The EMF exporter's documents go to stdout, whose reader is another process (a log driver, a
pipe into ``jq``, Lambda's log capture).  When that reader stops reading, the pipe fills and
``write()`` blocks until it reads again.  Written from the event loop's thread, that stopped
the whole loop: a consumer no longer renewed its leases and lost them, a producer stopped
sending.  Here the caller only appends lines to a bounded queue; one daemon thread writes
them in order.  A full queue drops lines (counted, and said in a rate-limited warning)
rather than wait, and a daemon thread blocked in ``write()`` cannot hold the interpreter's
exit.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TextIO

from shardline.lograte import RepeatedWarning

__all__ = ["LineWriter"]


class LineWriter:
    """Writes lines to their streams on a daemon thread, in the order they were put.

    :meth:`put` never blocks; :meth:`wait_written` waits, at most ``timeout`` seconds, until
    everything put before the call is written (or its write failed).  A write that raises is
    logged (a rate-limited warning naming the error's type) and its lines counted in
    :attr:`failed`; the thread goes on with the next lines.  Should the thread die all the
    same (a ``BaseException`` out of ``write()``), :attr:`death` says why and the lines left
    in the queue count as :attr:`dropped`: the owner raises it and starts a new writer.
    """

    def __init__(self, *, capacity: int, name: str, warnings: RepeatedWarning) -> None:
        assert capacity >= 1, "the exporter checks its queue_limit"
        self._capacity = capacity
        self._name = name
        self._warnings = warnings
        self._changed = threading.Condition(threading.Lock())
        self._queue: deque[tuple[TextIO, str]] = deque()
        self._put = 0  # lines accepted so far
        self._done = 0  # lines written or failed so far
        self._closing = False
        self._thread: threading.Thread | None = None
        self.dropped = 0
        """Lines refused because the queue was full (or the writer closed or died)."""
        self.failed = 0
        """Lines whose write raised."""
        self.death: BaseException | None = None
        """What ended the thread other than :meth:`close`; ``None`` while it serves."""

    @property
    def queued(self) -> int:
        """Lines put and not yet written."""
        with self._changed:
            return self._put - self._done

    def put(self, stream: TextIO, lines: Iterable[str]) -> int:
        """Queue ``lines`` for ``stream``; returns how many were taken.  Never blocks.

        Lines beyond the queue's capacity are dropped, the later ones, so what is written
        stays in order.
        """
        taken = refused = 0
        with self._changed:
            open_ = not self._closing and self.death is None
            for line in lines:
                if open_ and len(self._queue) < self._capacity:
                    self._queue.append((stream, line))
                    taken += 1
                else:
                    refused += 1
            self._put += taken
            self.dropped += refused
            queued = self._put - self._done
            if taken:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                    self._thread.start()
                self._changed.notify_all()
        if refused:
            self._warnings.warning(
                "queue_full",
                "metrics output is not keeping up (is stdout read?): %d documents dropped, %d queued",
                refused,
                queued,
            )
        return taken

    def wait_written(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds until every line put so far is written (or failed).

        ``True`` when they are; ``False`` on the timeout, or when the thread died first.
        """
        with self._changed:
            target = self._put
            finished = self._changed.wait_for(
                lambda: self._done >= target or self.death is not None, timeout=max(0.0, timeout)
            )
            return finished and self._done >= target

    def close(self, timeout: float) -> bool:
        """Write what is queued (waiting at most ``timeout`` seconds), then end the thread.

        ``True`` when everything was written and the thread ended; a thread still blocked in
        ``write()`` is left behind (a daemon: it cannot hold the interpreter's exit).
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            thread = self._thread
        written = self.wait_written(timeout)
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
            return written and not thread.is_alive()
        return written

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # noqa: BLE001 - the owner must hear of any death
            with self._changed:
                self.death = exc
                self.dropped += len(self._queue)
                self._done += len(self._queue)
                self._queue.clear()
                self._changed.notify_all()

    def _serve(self) -> None:
        while True:
            with self._changed:
                # The thread's idle wait: put() and close() notify; nothing waits on this one.
                self._changed.wait_for(lambda: bool(self._queue) or self._closing)
                if not self._queue:
                    return  # closing, and everything is written
                batch = list(self._queue)
                self._queue.clear()
            failed = 0
            try:
                for stream, lines in _runs(batch):
                    failed += self._write(stream, lines)
            except BaseException:
                failed = len(batch)  # none of it is known to be written
                raise
            finally:
                with self._changed:
                    self.failed += failed
                    self._done += len(batch)
                    self._changed.notify_all()

    def _write(self, stream: TextIO, lines: list[str]) -> int:
        """Write ``lines`` in one call; how many were lost to a write that raised."""
        try:
            stream.write("".join(lines))
            stream.flush()
        except Exception as exc:  # noqa: BLE001 - logged and counted; the next lines are written
            self._warnings.warning(
                "write_failed",
                "writing metrics failed (%s): %d documents dropped",
                type(exc).__name__,
                len(lines),
            )
            return len(lines)
        return 0


def _runs(batch: list[tuple[TextIO, str]]) -> Iterator[tuple[TextIO, list[str]]]:
    """The batch's consecutive lines for one stream, in order (one stream, one run, usually)."""
    run: list[str] = []
    current: TextIO | None = None
    for stream, line in batch:
        if stream is not current and run:
            assert current is not None
            yield current, run
            run = []
        current = stream
        run.append(line)
    if run:
        assert current is not None
        yield current, run
