"""An observer raising ``CancelledError`` of its own is contained like any other failure.

``on_event`` is synchronous, so no cancellation of the calling task can arrive inside it; the
guard let this one through, and it ended the sender or reader task that reported the event.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shardline.metrics import guard_observer


class _CancelledInside:
    """Reads the result of a cancelled future, as an observer awaiting nothing still can."""

    def __init__(self) -> None:
        self.calls = 0

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.calls += 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.cancel()
        future.result()


async def test_a_cancelled_error_from_the_observer_is_contained_and_counted() -> None:
    raising = _CancelledInside()
    guarded = guard_observer(raising)
    guarded.on_event("records_sent", 1.0, stream="s")
    guarded.on_event("records_sent", 1.0, stream="s")
    assert raising.calls == 2
    assert guarded.failures == 2  # type: ignore[attr-defined]


def test_a_keyboard_interrupt_from_the_observer_still_passes() -> None:
    class Interrupted:
        def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        guard_observer(Interrupted()).on_event("records_sent")
