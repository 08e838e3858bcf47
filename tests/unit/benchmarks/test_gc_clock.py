"""The peer benchmarks' garbage-collector clock counts collections inside its span only."""

from __future__ import annotations

import gc

import pytest

from benchmarks.peers.gc_clock import GcClock


def test_counts_collections_between_start_and_stop() -> None:
    clock = GcClock()
    gc.collect()  # before start: not counted
    clock.start()
    gc.collect(0)
    gc.collect(2)
    clock.stop()
    gc.collect()  # after stop: not counted
    assert clock.collections == [1, 0, 1]
    assert clock.seconds > 0.0
    assert clock.seconds == pytest.approx(sum(clock.seconds_by_generation))
    assert clock.seconds_by_generation[1] == 0.0 < clock.seconds_by_generation[2]
    assert clock._on_collection not in gc.callbacks


def test_report_is_per_unit_and_restart_begins_from_zero() -> None:
    clock = GcClock()
    clock.start()
    clock.start()  # idempotent: one callback, not two
    gc.collect(1)
    clock.stop()
    assert clock.collections == [0, 1, 0]
    row = clock.report(1_000_000, "msg")
    assert set(row) == {"gc_us_per_msg", "full_gc_us_per_msg", "gc_collections"}
    assert row["gc_us_per_msg"] == round(clock.seconds, 2)
    assert row["full_gc_us_per_msg"] == 0.0
    clock.start()
    assert clock.collections == [0, 0, 0] and clock.seconds == 0.0
    clock.stop()
