"""The acknowledgement tracker never lets a checkpoint pass the lowest unfinished record."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from consumers._pipeline_tracker import AckTracker, Ticket
from shardline.records import KinesisPosition


def _position(sequence: int) -> KinesisPosition:
    return KinesisPosition("stream", "shard-0", str(sequence))


@st.composite
def _runs_and_completion_order(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    sizes = draw(st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=30))
    order = draw(st.permutations(list(range(len(sizes)))))
    return sizes, list(order)


@settings(max_examples=300, deadline=None)
@given(_runs_and_completion_order())
def test_checkpoint_never_passes_lowest_unfinished_record(case: tuple[list[int], list[int]]) -> None:
    """RELIABILITY row 2: out-of-order completion against a record-level oracle."""
    sizes, completion_order = case
    tracker = AckTracker()
    tickets: list[Ticket] = []
    record_sequences: list[list[int]] = []
    next_sequence = 1
    for size in sizes:
        sequences = list(range(next_sequence, next_sequence + size))
        next_sequence += size
        last = _position(sequences[-1]) if sequences else None
        tickets.append(tracker.issue("shard-0", size, last))
        record_sequences.append(sequences)

    finished: set[int] = set()
    finished_runs: set[int] = set()
    previous = 0
    for index in completion_order:
        tracker.finish(tickets[index])
        finished.update(record_sequences[index])
        finished_runs.add(index)
        watermark = tracker.committable("shard-0")
        committed = 0 if watermark is None else int(watermark.sequence_number)  # type: ignore[union-attr]
        unfinished = [s for s in range(1, next_sequence) if s not in finished]
        if unfinished:
            assert committed < min(unfinished)
        # and as high as allowed: the last record of the longest prefix of finished runs
        assert committed == _prefix_watermark(record_sequences, finished_runs)
        assert committed >= previous  # monotonic
        previous = committed
    assert tracker.progress("shard-0") is not None
    assert tracker.unfinished_records == 0


def _prefix_watermark(record_sequences: list[list[int]], finished_runs: set[int]) -> int:
    watermark = 0
    for index, sequences in enumerate(record_sequences):
        if index not in finished_runs:
            break
        if sequences:
            watermark = sequences[-1]
    return watermark


def test_end_ticket_marks_partition_ended_only_after_everything_before() -> None:
    tracker = AckTracker()
    first = tracker.issue("p", 2, _position(2))
    end = tracker.issue("p", 0, None, end_of_partition=True)
    assert tracker.finish(end) is False
    progress = tracker.progress("p")
    assert progress is not None
    assert not progress.ended
    assert tracker.finish(first) is True
    assert progress.ended
    assert tracker.committable("p") == _position(2)


def test_partitions_are_independent_and_counts_add_up() -> None:
    tracker = AckTracker()
    a = tracker.issue("a", 3, _position(3))
    b = tracker.issue("b", 4, _position(40))
    assert tracker.unfinished_records == 7
    tracker.finish(b)
    assert tracker.committable("a") is None
    assert tracker.committable("b") == _position(40)
    progress_b = tracker.progress("b")
    assert progress_b is not None
    assert progress_b.uncommitted_records == 4
    tracker.mark_committed("b")
    assert progress_b.uncommitted_records == 0
    assert tracker.finish(a) is True
    assert tracker.finish(a) is False  # finishing twice is harmless
    assert tracker.unfinished_records == 0


def test_acknowledged_prefix_of_the_head_ticket_moves_the_watermark() -> None:
    tracker = AckTracker()
    first = tracker.issue("shard-0", 2, _position(2))
    second = tracker.issue("shard-0", 4, _position(6))
    assert tracker.finish(first)
    assert tracker.acknowledge_prefix(second, 2, _position(4))
    assert tracker.committable("shard-0") == _position(4)
    progress = tracker.progress("shard-0")
    assert progress is not None
    assert (progress.unfinished_records, progress.uncommitted_records) == (2, 4)
    assert not tracker.acknowledge_prefix(second, 1, _position(3))  # never backwards
    assert tracker.finish(second)
    assert tracker.committable("shard-0") == _position(6)
    assert (progress.unfinished_records, progress.uncommitted_records) == (0, 6)


def test_acknowledged_prefix_behind_an_unfinished_ticket_waits_for_it() -> None:
    tracker = AckTracker()
    first = tracker.issue("shard-0", 2, _position(2))
    second = tracker.issue("shard-0", 4, _position(6))
    assert not tracker.acknowledge_prefix(second, 3, _position(5))
    assert tracker.committable("shard-0") is None
    assert tracker.finish(first)
    assert tracker.committable("shard-0") == _position(5)  # past the first, into the second
