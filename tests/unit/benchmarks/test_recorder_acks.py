"""The recorder's accounting of acknowledged entries: per shard, per second, and latency."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from unittest import mock

from benchmarks.histogram import LatencyHistogram
from benchmarks.recorder import Recorder

SHARDS = [f"shardId-{n:012d}" for n in range(4)]

# A tick of eight records over four shards, acknowledged by two responses (two entries each
# arrive at 100.25, two at 101.5): what a 64-shard run's batches look like.
ENTRIES: list[tuple[str, Sequence[int], float]] = [
    (SHARDS[0], [0, 4], 100.25),
    (SHARDS[1], [1, 5], 101.5),
    (SHARDS[2], [2], 100.25),
    (SHARDS[3], [3, 6, 7], 101.5),
    (SHARDS[0], [], 102.0),  # an entry whose records all failed carries no position
]
SIZES = [10, 11, 12, 13, 14, 15, 16, 17]


def _recorder() -> Recorder:
    return Recorder(SHARDS, clock_start=100.0)


def _one_write_per_entry(
    recorder: Recorder, second: int, entries: Iterable[tuple[str, Sequence[int], float]], intended: float
) -> None:
    """The accounting written out entry by entry, as the reference."""
    for shard_id, positions, acked_at in entries:
        if not positions:
            continue
        ack_second = recorder.second(acked_at)
        recorder.acked_by_arrival[ack_second] += len(positions)
        recorder.accepted_records[shard_id][ack_second] += len(positions)
        recorder.accepted_bytes[shard_id][ack_second] += sum(SIZES[p] for p in positions)
        recorder.ack_latency.record_n(acked_at - intended, len(positions))
        recorder.ack_latency_by_second.at(second).record_n(acked_at - intended, len(positions))
        recorder.acked[second] += len(positions)
        recorder.acked_bytes[second] += sum(SIZES[p] for p in positions)
        recorder.last_ack_at = max(recorder.last_ack_at or 0.0, acked_at)


def test_a_ticks_entries_are_counted_as_entry_by_entry_with_one_histogram_write_per_response() -> None:
    grouped, reference = _recorder(), _recorder()
    writes: list[int] = []
    original = LatencyHistogram.record_n

    def counting(self: LatencyHistogram, seconds: float, count: int) -> None:
        writes.append(count)
        original(self, seconds, count)

    with mock.patch.object(LatencyHistogram, "record_n", counting):
        grouped.on_entries_acked(0, iter(ENTRIES), SIZES, 100.0)
    _one_write_per_entry(reference, 0, ENTRIES, 100.0)

    assert sorted(writes) == [3, 3, 5, 5]  # two responses, each into the run's and the second's histogram
    assert grouped.ack_latency.to_dict() == reference.ack_latency.to_dict()
    second = grouped.ack_latency_by_second.get(0)
    expected = reference.ack_latency_by_second.get(0)
    assert second is not None and expected is not None
    assert second.to_dict() == expected.to_dict()
    assert grouped.acked == reference.acked == {0: 8}
    assert grouped.acked_bytes == reference.acked_bytes
    assert grouped.acked_by_arrival == reference.acked_by_arrival == {0: 3, 1: 5}
    assert grouped.accepted_records == reference.accepted_records
    assert grouped.accepted_bytes == reference.accepted_bytes
    assert grouped.last_ack_at == reference.last_ack_at == 101.5


def test_per_record_intended_times_give_each_record_its_own_latency() -> None:
    recorder = _recorder()
    intended = [100.0 + n / 100 for n in range(8)]
    recorder.on_entries_acked(0, ENTRIES, SIZES, intended)
    assert recorder.ack_latency.count == 8
    assert recorder.acked_by_arrival == {0: 3, 1: 5}
    # record 1 was due at 100.01 and arrived at 101.5
    assert 1_485 <= recorder.ack_latency.summary_ms()["max"] <= 1_495


def test_a_batch_with_nothing_acknowledged_changes_nothing() -> None:
    recorder = _recorder()
    recorder.on_entries_acked(0, [(SHARDS[0], [], 101.0)], SIZES, 100.0)
    assert recorder.acked == {} and recorder.last_ack_at is None
    assert recorder.ack_latency.count == 0


def test_per_record_latencies_equal_recording_each_record_by_its_entrys_arrival() -> None:
    """Paced records (an intended time each): the positions of each response are gathered and
    recorded in one pass, the same latencies as one write per record."""
    recorder, reference = _recorder(), _recorder()
    intended = [100.0 + n / 100 for n in range(8)]
    recorder.on_entries_acked(0, ENTRIES, SIZES, intended)
    for shard_id, positions, acked_at in ENTRIES:
        for p in positions:
            reference.ack_latency.record(acked_at - intended[p])
            reference.accepted_records[shard_id][reference.second(acked_at)] += 1
            reference.accepted_bytes[shard_id][reference.second(acked_at)] += SIZES[p]
    assert recorder.ack_latency.to_dict() == reference.ack_latency.to_dict()
    by_second = recorder.ack_latency_by_second.get(0)
    assert by_second is not None and by_second.to_dict() == reference.ack_latency.to_dict()
    assert recorder.accepted_records == reference.accepted_records
    assert recorder.accepted_bytes == reference.accepted_bytes
    assert recorder.acked == {0: 8} and recorder.acked_bytes == {0: sum(SIZES)}
