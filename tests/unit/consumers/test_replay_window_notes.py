"""A Kinesis replay window that the stream cannot serve as asked is said before the job starts.

A window starting before the retention period read only what was left, and one ending in the
future waited for it: both exited or hung without a word on why.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from consumers.replay.kinesis_range import KinesisRange
from consumers.replay.window_notes import window_notes

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class Kinesis:
    def __init__(self, hours: Any = 24) -> None:
        self.hours = hours
        self.calls = 0

    async def describe_stream_summary(self, StreamName: str) -> dict[str, Any]:
        self.calls += 1
        return {"StreamDescriptionSummary": {"StreamName": StreamName, "RetentionPeriodHours": self.hours}}


async def test_a_window_before_the_retention_period_is_said() -> None:
    window = KinesisRange(start_time=NOW - timedelta(days=3), end_time=NOW - timedelta(days=2))
    (note,) = await window_notes(Kinesis(24), "telemetry", window, now=NOW)
    assert "retention period of 24 h" in note
    assert "2026-12-05T12:00:00+00:00" in note  # the oldest record the stream still keeps


async def test_a_window_ending_in_the_future_is_said() -> None:
    window = KinesisRange(start_time=NOW - timedelta(hours=1), end_time=NOW + timedelta(hours=2))
    (note,) = await window_notes(Kinesis(24), "telemetry", window, now=NOW)
    assert "in the future" in note and "2026-12-06T14:00:00+00:00" in note


async def test_a_window_well_inside_the_stream_has_no_note() -> None:
    window = KinesisRange(start_time=NOW - timedelta(hours=23), end_time=NOW - timedelta(hours=1))
    assert await window_notes(Kinesis(24), "telemetry", window, now=NOW) == []
    last_day = KinesisRange(
        start_time=NOW - timedelta(hours=24, seconds=5)
    )  # "the last day", asked a moment ago
    assert await window_notes(Kinesis(24), "telemetry", last_day, now=NOW) == []
    kinesis = Kinesis()
    assert await window_notes(kinesis, "telemetry", KinesisRange(), now=NOW) == []
    assert kinesis.calls == 0  # no start time: nothing to compare, no call


async def test_an_answer_without_a_retention_period_gives_no_note() -> None:
    window = KinesisRange(start_time=NOW - timedelta(days=30))
    for hours in (None, "24", True, 0):
        assert await window_notes(Kinesis(hours), "telemetry", window, now=NOW) == []
