"""A result says how many records its latency percentiles leave out, and why."""

from __future__ import annotations

import dataclasses

from benchmarks.recorder import Recorder
from benchmarks.result import build_result
from benchmarks.run import RunOptions, RunOutcome
from benchmarks.workload import WorkloadSpec


def _outcome(
    outcome: RunOutcome, *, acked: int, failed: int, read: int, consumer: str = "polling"
) -> RunOutcome:
    recorder = Recorder(outcome.shard_ids, 0.0)
    recorder.sent[0] = acked + failed
    for _ in range(acked):
        recorder.on_ack(0, 100, 0.01)
    recorder.failed[0] = failed
    recorder.on_consumed_many(0, list(range(read)), [200_000] * read)
    options = RunOptions(workload=WorkloadSpec(duration=5, rate=400), consumer=consumer, drain_seconds=10)
    return dataclasses.replace(outcome, recorder=recorder, options=options)


def test_records_never_read_back_are_counted_next_to_the_end_to_end_percentiles(outcome: RunOutcome) -> None:
    result = build_result(_outcome(outcome, acked=1000, failed=0, read=600))
    assert result["summary"]["end_to_end_ms"]["count"] == 600
    assert (
        "400 of 1000 acknowledged records were not read back within the 10 s drain: end-to-end "
        "latency covers the 600 read, not the ones that never arrived"
    ) in result["notes"]


def test_failed_records_are_counted_next_to_the_send_to_ack_percentiles(outcome: RunOutcome) -> None:
    result = build_result(_outcome(outcome, acked=900, failed=100, read=900))
    assert (
        "100 of 1000 records failed (never acknowledged): send-to-ack latency covers the 900 acknowledged"
    ) in result["notes"]
    assert not any("not read back" in note for note in result["notes"])


def test_a_complete_run_and_a_run_without_readers_add_no_such_note(outcome: RunOutcome) -> None:
    for complete in (
        _outcome(outcome, acked=1000, failed=0, read=1000),
        _outcome(outcome, acked=1000, failed=0, read=0, consumer="none"),
    ):
        notes = build_result(complete)["notes"]
        assert not any("failed" in note or "not read back" in note for note in notes)
