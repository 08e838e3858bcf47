"""The aiobotocore session a :class:`~consumers.kinesis.KinesisSource` builds when given none.

Its clients decode what Kinesis answers a reader with :mod:`consumers.kinesis.reader_bodies`
instead of botocore's own parse, with the same results:

* every timestamp with :func:`~consumers.kinesis.reader_bodies.utc_timestamp` and every blob
  with :func:`~consumers.kinesis.reader_bodies.blob` (the parser defaults);
* a successful GetRecords body with
  :func:`~consumers.kinesis.reader_bodies.parse_get_records` (a ``before-parse`` handler,
  :mod:`shardline.response_bodies`);
* each SubscribeToShard event with
  :func:`~consumers.kinesis.reader_bodies.parse_subscribe_event`: events are parsed one by one
  as the enhanced fan-out stream delivers them, past ``before-parse``, so the session's parser
  factory gives JSON parsers an event-stream parser that tries it first.

Anything those functions do not fully recognise is parsed by botocore as before; an event
botocore's parse fails on (bytes from the network in another shape) raises
``ResponseParserError``, a broken stream to the reader, not a programming error.  Every
reader that builds its own Kinesis client (the source, replays and their slices, ``shardline
tail``) makes it with :func:`reader_client`.  A session or client passed in is used as it is.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from aiobotocore.parsers import AioEventStreamJSONParser, AioJSONParser, AioResponseParserFactory
from botocore.parsers import ResponseParserError

from consumers.kinesis.reader_bodies import blob, parse_get_records, parse_subscribe_event, utc_timestamp
from shardline.clients import aiobotocore_client, new_aiobotocore_session
from shardline.response_bodies import install_body_parser

__all__ = ["reader_client", "reader_session"]

_EVENT = "SubscribeToShardEvent"


_WALK_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError)
"""What botocore's parse (and the blob and timestamp decoders it calls) raises for a payload
of another shape than the event's; ``ValueError`` covers bad base64, JSON and UTF-8."""


class _SubscribeEventParser(AioEventStreamJSONParser):  # type: ignore[misc]
    """botocore's event-stream parser, trying :func:`parse_subscribe_event` on each event first.

    What botocore's parse raises for a payload that is not the shape it expects becomes
    :class:`~botocore.parsers.ResponseParserError`, which the error boundary maps to a broken
    stream (re-subscribed, bounded); the errors stay precise to that parse: our own
    :func:`parse_subscribe_event` runs outside the guard.
    """

    async def parse(self, response: dict[str, Any], shape: Any) -> Any:
        headers = response.get("headers") or {}
        body = response.get("body")
        if (
            response.get("status_code") == 200
            and headers.get(":message-type") == "event"
            and headers.get(":event-type") == _EVENT
            and type(body) is bytes
        ):
            event = parse_subscribe_event(body)
            if event is not None:
                return {_EVENT: event}
        try:
            return await super().parse(response, shape)
        except _WALK_ERRORS as error:
            # botocore walks the payload as if it had the event's shape: a list where a record
            # is due, a number where base64 is, bytes that are no UTF-8 raise from inside the
            # walk.  Only the type is kept: the message may quote the payload.
            raise ResponseParserError(f"{type(error).__name__} in an event stream message") from error


class _ReaderJSONParser(AioJSONParser):  # type: ignore[misc]
    EVENT_STREAM_PARSER_CLS = _SubscribeEventParser


class _ReaderParserFactory(AioResponseParserFactory):  # type: ignore[misc]
    """Parsers with the reader's timestamp and blob decoding; JSON ones with its event parser."""

    def __init__(self) -> None:
        super().__init__()
        self.set_parser_defaults(timestamp_parser=utc_timestamp, blob_parser=blob)

    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "json":
            return _ReaderJSONParser(timestamp_parser=utc_timestamp, blob_parser=blob)
        return super().create_parser(protocol_name)


def reader_session() -> Any:
    """A new aiobotocore session whose clients decode Kinesis answers as the module says."""
    session = new_aiobotocore_session()
    session.register_component("response_parser_factory", _ReaderParserFactory())
    install_body_parser(session, "GetRecords", parse_get_records)
    return session


def reader_client(
    *, endpoint_url: str | None = None, region_name: str | None = None
) -> AbstractAsyncContextManager[Any]:
    """``async with reader_client() as kinesis:`` a Kinesis client from a new
    :func:`reader_session`, for every reader Shardline builds its own client for (the source,
    replays and backfills, ``shardline tail``), closed on exit."""
    return aiobotocore_client(
        "kinesis", session=reader_session(), endpoint_url=endpoint_url, region_name=region_name
    )
