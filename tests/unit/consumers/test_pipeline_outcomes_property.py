"""Property: whatever a sink answers, every record ends exactly once, and checkpoints are safe.

Hypothesis scripts a sink's answer to every record of every call (written, duplicate, transient
failure, throttled, rejected), whole-call outages and whole-call failures (bisected), and a
dead-letter destination that may break for good (a crash of the workflow).  After the run:

* every record is written, dead-lettered with its position, or reported failed (the run
  raised and the checkpoint stays below it) -- never two of these, never none;
* the checkpoint never passes a record that is neither written nor dead-lettered;
* nothing is counted twice: a resolved record is never sent again, and the run's counters
  equal the distinct records in each outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.pipeline import Pipeline, PipelineConfig
from consumers.sinks.base import DeadLetterEntry, EntryResult
from shardline.errors import InvalidRequestError, ShardlineError, SinkError, TransientServiceError
from shardline.records import ConsumedRecord, KinesisPosition
from shardline.retry import RetryPolicy
from tests.unit.consumers.pipeline_doubles import ScriptedSource, batch

ANSWERS = ("written", "duplicate", "retry", "throttled", "rejected")
CALLS = ("answer", "answer", "answer", "answer", "outage", "call_failed")
BOUNDED = RetryPolicy(max_attempts=3, deadline=None, initial_backoff=0.0, max_backoff=0.0)


class ScriptedSink:
    """Answers each call as hypothesis draws it; remembers what it holds and what it resolved."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.held: dict[str, ConsumedRecord] = {}
        self.resolved: set[str] = set()
        self.sent_after_resolved: list[str] = []

    async def write(self, records: Sequence[ConsumedRecord]) -> Sequence[EntryResult]:
        for record in records:
            if record.identity in self.resolved:
                self.sent_after_resolved.append(record.identity)
        call = self.data.draw(st.sampled_from(CALLS), label="call")
        if call == "outage":
            raise TransientServiceError("destination down")
        if call == "call_failed":
            raise InvalidRequestError("one record of the call is refused")
        results: list[EntryResult] = []
        for record in records:
            answer = self.data.draw(st.sampled_from(ANSWERS), label="answer")
            if answer in ("written", "duplicate"):
                self.held[record.identity] = record
                self.resolved.add(record.identity)
                results.append(EntryResult.written() if answer == "written" else EntryResult.duplicate())
            elif answer == "retry":
                results.append(EntryResult.retry("internal error", "InternalFailure"))
            elif answer == "throttled":
                results.append(EntryResult.throttled("slow down", "Throttling"))
            else:
                results.append(EntryResult.rejected("invalid", "ValidationException"))
        return results

    async def close(self) -> None:
        return None


class MaybeBrokenDeadLetter:
    def __init__(self, breaks_after: int | None) -> None:
        self.entries: dict[str, DeadLetterEntry] = {}
        self.puts = 0
        self.breaks_after = breaks_after

    async def put(self, entries: Sequence[DeadLetterEntry]) -> None:
        self.puts += 1
        if self.breaks_after is not None and self.puts > self.breaks_after:
            raise ShardlineError("dead-letter store refuses", retriable=False)
        for entry in entries:
            assert entry.record.identity not in self.entries, "dead-lettered twice"
            self.entries[entry.record.identity] = entry

    async def close(self) -> None:
        return None


def _sequence(record: ConsumedRecord) -> int:
    position = record.position
    assert isinstance(position, KinesisPosition)
    return int(position.sequence_number)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    sizes=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=4),
    sink_batch=st.integers(min_value=1, max_value=4),
    breaks_after=st.one_of(st.none(), st.integers(min_value=0, max_value=3)),
)
def test_every_record_ends_exactly_once_and_checkpoints_stay_safe(
    data: st.DataObject, sizes: list[int], sink_batch: int, breaks_after: int | None
) -> None:
    batches = []
    first = 1
    for index, size in enumerate(sizes):
        batches.append(batch("a" if index % 2 == 0 else "b", first, size))
        first += size
    records = [record for source_batch in batches for record in source_batch.records]
    source = ScriptedSource(batches)
    sink = ScriptedSink(data)
    dead = MaybeBrokenDeadLetter(breaks_after)
    config = PipelineConfig(
        checkpoint_interval=3600, max_sink_batch_records=sink_batch, sink_retry=BOUNDED, entry_attempts=2
    )
    pipeline = Pipeline(source, sink, config=config, dead_letter=dead)

    async def run() -> BaseException | None:
        try:
            await asyncio.wait_for(pipeline.run(), 10)
        except SinkError as exc:
            return exc
        return None

    failure = asyncio.run(run())
    stats = pipeline.stats

    written = {identity for identity in sink.held}
    dead_lettered = set(dead.entries)
    assert not written & dead_lettered, "a record both written and dead-lettered"
    assert sink.sent_after_resolved == [], "a resolved record was sent again"
    for identity, entry in dead.entries.items():
        assert entry.source_position.identity == identity  # the dead letter names where it was read
        assert entry.error_type and entry.attempts >= 1
    assert stats.records_out == len(written)  # each written record counted once
    assert stats.dead_lettered == len(dead_lettered)

    for partition in ("a", "b"):
        mine = [record for record in records if record.position.partition == partition]
        if not mine:
            continue
        checkpoint = source.last_checkpoint(partition)
        for record in mine:
            done = record.identity in written or record.identity in dead_lettered
            if checkpoint is not None and _sequence(record) <= checkpoint:
                assert done, "the checkpoint passed a record neither written nor dead-lettered"
            if not done:
                # reported failed: the run raised, and the record stays redeliverable
                assert failure is not None
                assert checkpoint is None or _sequence(record) > checkpoint
        if failure is None:
            assert checkpoint == _sequence(mine[-1])
