"""The `consume` progress line after a Kinesis lease moved to another worker.

The shard's last lag stayed in the line: taken while 10 minutes behind, ``max_lag_ms`` said
10 minutes for the rest of the run, though this worker read on at the tip, and the shard was
still counted in ``partitions`` and ``caught_up``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from consumers.progress import ConsumeProgress
from shardline import metrics_events as events


def _last_line(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    line = caplog.records[-1]
    assert line.message == "progress"
    return vars(line)


def test_a_lost_lease_leaves_the_line(caplog: pytest.LogCaptureFixture) -> None:
    progress = ConsumeProgress(logger=logging.getLogger("test.progress"))
    progress.on_event(events.ITERATOR_AGE_MS, 0, stream="s", partition="shardId-0")
    progress.on_event(events.ITERATOR_AGE_MS, 600_000, stream="s", partition="shardId-1")
    progress.on_event(events.ITERATOR_AGE_MS, 0, stream="s", partition="shardId-2")
    # the source reports a loss with the shard's own dimension
    progress.on_event(events.LEASES_LOST, 1, stream="s", shard="shardId-1")
    progress.on_event(events.LEASES_LOST, 1, stream="s", shard="shardId-2")
    with caplog.at_level(logging.INFO, logger="test.progress"):
        progress.log()
    line = _last_line(caplog)
    assert line["partitions"] == 1
    assert line["max_lag_ms"] == 0
    assert line["caught_up"] == 1


def test_a_lease_taken_back_reports_again(caplog: pytest.LogCaptureFixture) -> None:
    progress = ConsumeProgress(logger=logging.getLogger("test.progress"))
    progress.on_event(events.ITERATOR_AGE_MS, 0, partition="shardId-0")
    progress.on_event(events.LEASES_LOST, 1, shard="shardId-0")
    progress.on_event(events.ITERATOR_AGE_MS, 5_000, partition="shardId-0")
    with caplog.at_level(logging.INFO, logger="test.progress"):
        progress.on_event(events.ITERATOR_AGE_MS, 0, partition="shardId-0")  # "caught up" again
        progress.log()
    assert [record.message for record in caplog.records] == ["caught up", "progress"]
    line = _last_line(caplog)
    assert line["partitions"] == 1 and line["max_lag_ms"] == 0 and line["caught_up"] == 1


def test_a_shard_read_to_its_end_leaves_the_line(caplog: pytest.LogCaptureFixture) -> None:
    """A split closes the parent: read to its end, it sends no batch again, and its children
    are read next.  Kept, the parent counted in ``partitions`` for the rest of the run (three
    after one split into two) and its last lag held ``max_lag_ms`` up."""
    progress = ConsumeProgress(logger=logging.getLogger("test.progress"))
    progress.on_event(events.ITERATOR_AGE_MS, 90_000, stream="s", partition="shardId-0")
    progress.on_event(events.SHARDS_FINISHED, 1, stream="s", shard="shardId-0")
    for child in ("shardId-1", "shardId-2"):
        progress.on_event(events.ITERATOR_AGE_MS, 500, stream="s", partition=child)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        progress.log()
    line = _last_line(caplog)
    assert (line["partitions"], line["max_lag_ms"]) == (2, 500)
