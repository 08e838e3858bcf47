"""The before-parse handler: a 200 body its parser recognises becomes the parsed members (and
botocore sees an empty body); anything else is left to botocore untouched."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shardline.response_bodies import install_body_parser


class _Events:
    def __init__(self) -> None:
        self.handlers: dict[str, tuple[Callable[..., Any], str | None]] = {}

    def register(self, event_name: str, handler: Callable[..., Any], unique_id: str | None = None) -> None:
        self.handlers[event_name] = (handler, unique_id)


def _handler(parse: Callable[[bytes], dict[str, Any] | None]) -> Callable[..., Any]:
    events = _Events()
    install_body_parser(events, "GetRecords", parse)
    (name,) = events.handlers
    assert name == "before-parse.kinesis.GetRecords"
    handler, unique_id = events.handlers[name]
    assert unique_id  # registered under a fixed id: installing twice keeps one handler
    return handler


def test_a_recognised_body_becomes_the_response() -> None:
    handler = _handler(lambda body: {"Parsed": body.decode()})
    response: dict[str, Any] = {"status_code": 200, "body": b"abc", "headers": {}}
    customized: dict[str, Any] = {}
    handler(response_dict=response, customized_response_dict=customized, operation_model=None)
    assert customized == {"Parsed": "abc"}
    assert response["body"] == b""  # botocore's own parse then adds only ResponseMetadata


@pytest.mark.parametrize(
    ("status", "body", "parsed"),
    [
        (200, b"abc", None),
        (400, b"abc", {"Parsed": "x"}),
        (500, b"abc", {"Parsed": "x"}),
        (200, "abc", {"P": 1}),
    ],
    ids=["not-recognised", "client-error", "server-error", "not-bytes"],
)
def test_anything_else_is_left_to_botocore(status: int, body: Any, parsed: dict[str, Any] | None) -> None:
    calls: list[bytes] = []

    def parse(raw: bytes) -> dict[str, Any] | None:
        calls.append(raw)
        return parsed

    handler = _handler(parse)
    response: dict[str, Any] = {"status_code": status, "body": body, "headers": {}}
    customized: dict[str, Any] = {}
    handler(response_dict=response, customized_response_dict=customized)
    assert customized == {}
    assert response["body"] is body
    assert calls == ([body] if status == 200 and type(body) is bytes else [])


async def parse_through(client: Any, operation_model: Any, body: bytes) -> tuple[dict[str, Any], bytes]:
    """What ``client``'s before-parse handlers make of a 200 ``body``: (members, body left)."""
    response: dict[str, Any] = {"status_code": 200, "headers": {}, "body": body}
    customized: dict[str, Any] = {}
    await client.meta.events.emit(
        f"before-parse.kinesis.{operation_model.name}",
        operation_model=operation_model,
        response_dict=response,
        customized_response_dict=customized,
    )
    return customized, response["body"]
