"""Telling a cancellation apart from a ``CancelledError`` that nobody sent.

A background task ends on ``CancelledError`` when its owner cancels it (close, stop, a
timeout) and must then let it through.  But code it awaits can raise ``CancelledError`` on
its own: an HTTP library surfacing its own timeout, a client awaiting a future someone else
cancelled.  Re-raising that one ends the task as "cancelled" with nobody told: a shard
reader stops reading while its lease is renewed, a pipeline lane leaves its queue unjoined
and ``run()`` waits for ever.  Python 3.11 counts the requests a task received
(``Task.cancelling()``); a ``CancelledError`` met while that count is zero is a failure to
hand to the task's owner like any other.
"""

from __future__ import annotations

import asyncio

from shardline.errors import BackgroundTaskError

__all__ = ["cancel_requested", "stray_cancel"]


def cancel_requested() -> bool:
    """Whether the running task was asked to stop (``Task.cancel()``: its owner, a timeout).

    ``False`` means a ``CancelledError`` caught now came from the code the task awaited, not
    from a cancellation.  Outside a task there is nobody to report to: ``True``.
    """
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def stray_cancel(exc: BaseException, where: str) -> BaseException:
    """What a task hands its owner for ``exc``, caught where the task ends.

    A cancellation the task was asked for (:func:`cancel_requested`) is raised again here: the
    task ends cancelled, as its owner wants.  A ``CancelledError`` nobody sent becomes a
    :class:`BackgroundTaskError` caused by it, which the owner's caller cannot mistake for a
    cancellation of its own; anything else is ``exc`` itself.
    """
    if not isinstance(exc, asyncio.CancelledError):
        return exc
    if cancel_requested():
        raise exc
    failure = BackgroundTaskError(f"{where} met a CancelledError that nobody sent it")
    failure.__cause__ = exc
    return failure
