"""Stopping a run's reader tasks, and saying which of them had died.

A reader that stops on an error leaves its shard unread: the run's consumed count then falls
short of what was written, and a report that only shows the shortfall leaves the operator to
guess whether records were lost.  The runs used to gather their readers with
``return_exceptions=True`` and drop the results; :func:`stop_readers` turns each death into
a note the result and the report carry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from shardline.errors import ShardlineError

__all__ = ["stop_readers"]


async def stop_readers(readers: Mapping[asyncio.Task[None], str]) -> list[str]:
    """Cancel ``readers`` (task -> what it read) and return a note for each that had failed.

    A reader still running is cancelled, which is how a run ends it; one that ended on an
    exception gets a note naming the error: its type, and the message of Shardline's own
    errors (never a record's bytes: other libraries' messages may quote what they parsed).
    """
    for task in readers:
        task.cancel()
    results = await asyncio.gather(*readers, return_exceptions=True)
    return [
        f"{name} stopped early on {_reason(result)}: what it had not read is missing from the counts"
        for name, result in zip(readers.values(), results, strict=True)
        if isinstance(result, Exception)
    ]


def _reason(error: Exception) -> str:
    if isinstance(error, ShardlineError) and str(error):
        return f"{type(error).__name__} ({error})"
    return type(error).__name__
