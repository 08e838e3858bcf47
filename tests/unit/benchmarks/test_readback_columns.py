"""The bench readers take KPL aggregates whole and read only their payload column."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from benchmarks.gcpolicy import run_gc_settings
from benchmarks.readback import read_batch
from benchmarks.recorder import Recorder
from benchmarks.workload import encode_payload
from shardline.aggregation import AggregateBuilder, aggregate_payloads


@dataclass
class Read:
    data: bytes


def _aggregate(ids: range, fmt: str = "binary", intended_ns: int = 5_000_000_000) -> bytes:
    builder = AggregateBuilder()
    for i in ids:
        assert builder.try_add(f"device-{i % 7}", encode_payload(i, intended_ns, f"device-{i % 7}", 64, fmt))
    return builder.encode()


def test_an_aggregate_yields_its_records_payloads_in_order() -> None:
    payloads = aggregate_payloads(_aggregate(range(10, 20)))
    assert payloads == [
        encode_payload(i, 5_000_000_000, f"device-{i % 7}", 64, "binary") for i in range(10, 20)
    ]


@pytest.mark.parametrize("fmt", ["binary", "json"])
def test_read_batch_counts_every_record_of_an_aggregate_once(fmt: str) -> None:
    recorder = Recorder(["s"], 0.0)
    aggregate = Read(_aggregate(range(50), fmt))
    plain = Read(encode_payload(50, 5_000_000_000, "d", 64, fmt))
    read_batch(recorder, [aggregate, plain], 0, now_ns=5_300_000_000, floor_ns=1_000_000_000)
    read_batch(recorder, [aggregate], 1, now_ns=5_400_000_000, floor_ns=1_000_000_000)  # read again
    assert recorder.total_consumed == 51 and recorder.duplicates == 50
    summary = recorder.e2e_latency.summary_ms()
    assert summary["count"] == 51 and summary["max"] == pytest.approx(300, rel=0.002)


def test_a_corrupt_aggregate_is_one_foreign_record_not_its_contents() -> None:
    data = bytearray(_aggregate(range(5)))
    data[-1] ^= 0xFF  # the MD5 no longer matches
    assert aggregate_payloads(bytes(data)) is None
    recorder = Recorder(["s"], 0.0)
    read_batch(recorder, [Read(bytes(data))], 0, now_ns=5_300_000_000, floor_ns=0)
    assert recorder.total_consumed == 0 and recorder.duplicates == 0


def test_records_before_the_floor_and_short_foreign_records_are_skipped_in_a_mixed_batch() -> None:
    recorder = Recorder(["s"], 0.0)
    batch = [
        Read(_aggregate(range(3), intended_ns=500)),  # an earlier run's records
        Read(b"short"),
        Read(_aggregate(range(3, 6))),
    ]
    read_batch(recorder, batch, 0, now_ns=5_300_000_000, floor_ns=1_000_000_000)
    assert recorder.total_consumed == 3


@pytest.fixture
def default_gc() -> Iterator[None]:
    """A collector with nothing frozen (the CLI freezes its heap at exit), restored after."""
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    gc.unfreeze()
    yield
    gc.set_threshold(*before)
    if frozen:
        gc.freeze()


def test_gc_settings_hold_during_the_block_and_are_restored_after(default_gc: None) -> None:
    gc.set_threshold(700, 10, 10)
    with run_gc_settings(young=40_000, old=50):
        assert gc.get_threshold() == (40_000, 10, 50)
        assert gc.get_freeze_count() > 0  # setup's objects are out of the collector's way
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_gc_settings_leave_objects_someone_else_froze_frozen(default_gc: None) -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with run_gc_settings():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_the_result_printer_freezes_the_heap_at_exit_not_in_the_calling_program(default_gc: None) -> None:
    from benchmarks import cli

    cli._freeze_heap_at_exit()
    assert gc.get_freeze_count() == 0  # a test or program calling the CLI in-process keeps its collector
    assert cli._FREEZE_AT_EXIT == [True]  # registered with atexit once
    cli._freeze_heap_at_exit()
    assert cli._FREEZE_AT_EXIT == [True]
