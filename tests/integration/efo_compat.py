"""Test-only adaptation: kinesis-mock's SubscribeToShard stream has no initial-response event.

Real AWS opens the event stream with an ``initial-response`` event, which aiobotocore's parser
requires ("First event was not of type initial-response").  kinesis-mock starts directly with a
SubscribeToShardEvent.  Inside the test process only, :func:`tolerate_missing_initial_response`
makes the parser accept that: when the first event is not the initial response, it stands in an
empty initial response and puts the event back in front of the stream, so nothing is lost.
Shipped code never does this.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from aiobotocore.eventstream import AioEventStream


class _EmptyInitialResponse:
    payload = b"{}"
    headers = {":event-type": "initial-response"}


async def _get_initial_response(self: Any) -> Any:
    events: AsyncIterator[Any] = self._event_generator
    first = await anext(events)
    if first.headers.get(":event-type") == "initial-response":
        return first

    async def replay_first() -> AsyncIterator[Any]:
        yield first
        async for event in events:
            yield event

    self._event_generator = replay_first()
    return _EmptyInitialResponse()


@contextmanager
def tolerate_missing_initial_response() -> Iterator[None]:
    """Patch aiobotocore's event stream for the duration of the block (test process only)."""
    original = AioEventStream.get_initial_response
    AioEventStream.get_initial_response = _get_initial_response
    try:
        yield
    finally:
        AioEventStream.get_initial_response = original
