"""What a Kinesis replay's time window means against the stream, said before the job starts.

Two windows read nothing, or less than asked, without an error, and looked like an empty or a
hung job:

* one that starts before the stream's retention period: Kinesis starts an ``AT_TIMESTAMP``
  iterator at the oldest record it still keeps, so everything older is silently not there
  (its copy, if any, is in the Firehose archive: replay ``s3://BUCKET/PREFIX``);
* one that ends in the future: the job reads, and waits at the tip, until that time.

The notes name times and hours only; they read ``RetentionPeriodHours`` with one
DescribeStreamSummary call (the call the replay's preflight check makes too).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from consumers.replay.kinesis_range import KinesisRange
from shardline.errormap import map_aws_errors

__all__ = ["window_notes"]

_SLACK = timedelta(minutes=10)


async def window_notes(
    client: Any, stream: str, window: KinesisRange, now: datetime | None = None
) -> list[str]:
    """Notes on ``window`` for a replay of ``stream`` (none for a window well inside it)."""
    now = now if now is not None else datetime.now(UTC)
    notes: list[str] = []
    if window.start_time is not None:
        with map_aws_errors("kinesis"):
            summary = await client.describe_stream_summary(StreamName=stream)
        hours = summary.get("StreamDescriptionSummary", {}).get("RetentionPeriodHours")
        if isinstance(hours, int) and not isinstance(hours, bool) and hours > 0:
            oldest = now - timedelta(hours=hours)
            # a window of "the last 24 hours" on a 24-hour stream is no news: only a start well
            # before the oldest record kept is
            if window.start_time < oldest - _SLACK:
                notes.append(
                    f"the window starts at {_iso(window.start_time)}, before the stream's retention "
                    f"period of {hours} h: records from before about {_iso(oldest)} are no longer in "
                    "the stream, so the replay starts at the oldest record it keeps (an archive, "
                    "replayed from s3://BUCKET/PREFIX, may hold the older ones)"
                )
    if window.end_time is not None and window.end_time > now:
        notes.append(
            f"the window ends at {_iso(window.end_time)}, in the future: the job reads until then, "
            "waiting at the stream's tip for records that arrive meanwhile"
        )
    return notes


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
