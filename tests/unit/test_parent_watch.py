"""A worker's parent watch ends in a stop, whether the parent went away or the watch failed.

The watch is a thread the worker starts (stream-bench's workers, replay's slice runners); its
death must not leave the worker running on unwatched (producing into the stream, or holding a
slice's claim, with nobody to collect its result).
"""

from __future__ import annotations

import os
import threading

import pytest

from shardline import parentwatch


def _stopped_by(watch_target: threading.Thread, stopped: threading.Event) -> bool:
    watch_target.join(timeout=10)
    return stopped.is_set() and not watch_target.is_alive()


def test_a_parent_that_is_gone_stops_the_worker() -> None:
    stopped = threading.Event()
    watcher = parentwatch.stop_when_orphaned(
        os.getppid() + 1_000_000, label="worker", poll_s=0.01, stop=stopped.set
    )
    assert _stopped_by(watcher, stopped)


def test_a_failing_watch_stops_the_worker_and_says_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken_getppid() -> int:
        raise OSError("no parent to ask")

    monkeypatch.setattr(parentwatch.os, "getppid", broken_getppid)
    stopped = threading.Event()
    watcher = parentwatch.stop_when_orphaned(1, label="a worker", poll_s=0.01, stop=stopped.set)
    assert _stopped_by(watcher, stopped)
    assert "a worker: watching the parent process failed (OSError); stopping" in capsys.readouterr().err


def test_a_live_parent_keeps_the_worker_running(monkeypatch: pytest.MonkeyPatch) -> None:
    parent_alive = threading.Event()
    parent_alive.set()
    asked = threading.Semaphore(0)

    def getppid() -> int:
        asked.release()
        return 4242 if parent_alive.is_set() else 1

    monkeypatch.setattr(parentwatch.os, "getppid", getppid)
    stopped = threading.Event()
    watcher = parentwatch.stop_when_orphaned(4242, label="worker", poll_s=0.001, stop=stopped.set)
    for _ in range(3):  # three looks at a live parent: nothing stopped
        assert asked.acquire(timeout=10)
    assert not stopped.is_set()
    parent_alive.clear()
    assert _stopped_by(watcher, stopped)
