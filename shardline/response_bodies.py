"""Successful Kinesis response bodies parsed by an operation's own function, not botocore's walk.

Why: botocore parses a JSON response by walking the operation's output shape in Python, a
handler call per member of every list entry: every record a GetRecords response carries and
every entry of a PutRecords response.  ``json.loads`` and a check of each entry's members do
the same for these two shapes in a fraction of the time.  In-process, best of five, with the
reader's own blob and timestamp parsers in both (``python -m benchmarks.peers.kinesis_parse``):
a GetRecords body of 1,000 records of 100 B, 3.6 ms -> 1.6 ms; of four aggregates,
21 -> 11 us; PutRecords bodies of 61 and 500 entries, 88 -> 26 us and 689 -> 209 us.

How: a ``before-parse`` handler on the client (or on the session its clients are made from)
hands a 200 response's body to the operation's parse function.  When that returns the parsed
members, they become botocore's customized response and the body botocore sees is emptied, so
botocore's parser adds only the ``ResponseMetadata``.  A parse function returns ``None`` for
anything it does not fully recognise (malformed JSON, a member it does not know, a value of
another type); botocore then parses the body as it always did, so what a call returns never
differs from botocore's result.  A null member is left out, as botocore leaves it out.  Errors
(any other status) are always botocore's, and so is their mapping to Shardline's exceptions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, MutableMapping
from typing import Any, Protocol

__all__ = ["BodyParser", "install_body_parser", "json_members"]

BodyParser = Callable[[bytes], dict[str, Any] | None]
"""A 200 response body -> the operation's parsed members, or ``None`` to leave it to botocore."""


class _Events(Protocol):
    def register(self, event_name: str, handler: Callable[..., Any], unique_id: str | None = ...) -> None: ...


def install_body_parser(events: _Events, operation: str, parse: BodyParser) -> None:
    """Have ``operation``'s successful Kinesis responses parsed by ``parse``.

    ``events`` is a client's ``meta.events`` or a session (its clients made afterwards inherit
    the handler).  Idempotent: the handler is registered under an id per operation.
    """

    def parse_body(
        response_dict: MutableMapping[str, Any], customized_response_dict: dict[str, Any], **_: Any
    ) -> None:
        body = response_dict.get("body")
        if response_dict.get("status_code") != 200 or type(body) is not bytes:
            return
        parsed = parse(body)
        if parsed is None:
            return  # botocore parses it, as it would have
        customized_response_dict.update(parsed)
        response_dict["body"] = b""

    events.register(
        f"before-parse.kinesis.{operation}", parse_body, unique_id=f"shardline-body-parser-{operation}"
    )


def json_members(body: bytes, members: frozenset[str]) -> dict[str, Any] | None:
    """The JSON object in ``body`` without its null members, if all it has left are ``members``.

    botocore leaves a null member out (some servers, kinesis-mock among them, write the members
    an answer lacks as nulls), so a parse function starts from the same members botocore would
    see; ``None`` for anything that is not such an object.
    """
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if type(parsed) is not dict:
        return None
    if None in parsed.values():
        parsed = {name: value for name, value in parsed.items() if value is not None}
    return parsed if parsed.keys() <= members else None
