"""Failures moto never produces, injected into real aiobotocore clients talking to moto.

Partial failures work on botocore's event hooks, so the request that goes on the wire and
the response the sink parses are real, only edited:

* ``provide-client-params`` removes the entries chosen to fail from the request, so they
  never reach the server;
* ``after-call`` puts them back into the parsed response in the service's own failure
  format (Firehose ``FailedPutCount``/``ErrorCode``, DynamoDB ``UnprocessedItems``), or
  raises the service's own error (Timestream ``RejectedRecordsException``);
* ``before-call`` answers a whole call with an error (throttling) without sending it;
* ``before-send`` records every request body that really went on the wire, so a test can
  assert that only failed entries were resent.

:class:`ToggleProxy` is a TCP proxy in front of moto that can be taken down (the port
refuses connections) and brought back, for "the destination is down for a while".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

Plan = Callable[[int, int, dict[str, Any]], str | None]
"""(call number from 0, entry index, entry) -> an error code to inject for that entry, or None."""


class WireTap:
    """Every request body of one operation that went on the wire, parsed from JSON."""

    def __init__(self, client: Any, service_id: str, operation: str) -> None:
        self.bodies: list[dict[str, Any]] = []
        client.meta.events.register(f"before-send.{service_id}.{operation}", self._record)

    def _record(self, request: Any, **_: Any) -> None:
        body = request.body
        self.bodies.append(json.loads(body.decode() if isinstance(body, bytes) else body))


class _Answer:
    """The little of an HTTP response botocore looks at when a hook answers a call."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""
        self.raw = None


class _EntryFaults:
    """Shared bookkeeping: which call this is, which entries of it fail, and with what code."""

    field: str

    def __init__(self, client: Any, service_id: str, operation: str, plan: Plan) -> None:
        self.plan = plan
        self.calls = 0
        self.injected = 0
        events = client.meta.events
        events.register(f"provide-client-params.{service_id}.{operation}", self._drop)
        events.register(f"before-call.{service_id}.{operation}", self._answer_if_all_failed)
        events.register(f"after-call.{service_id}.{operation}", self._restore)

    def entries(self, params: dict[str, Any]) -> list[Any]:
        entries: list[Any] = params[self.field]
        return entries

    def set_entries(self, params: dict[str, Any], entries: list[Any]) -> None:
        params[self.field] = entries

    def _drop(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        entries = self.entries(params)
        failing = {}
        for index, entry in enumerate(entries):
            code = self.plan(self.calls, index, entry)
            if code is not None:
                failing[index] = code
        self.calls += 1
        if failing:
            context["injected"] = (entries, failing)
            self.injected += len(failing)
            if len(failing) < len(entries):
                self.set_entries(params, [e for i, e in enumerate(entries) if i not in failing])
            else:  # an empty request is invalid: answer it without sending anything
                context["all_failed"] = True

    def _answer_if_all_failed(
        self, context: dict[str, Any], **_: Any
    ) -> tuple[_Answer, dict[str, Any]] | None:
        if context.pop("all_failed", False):
            return _Answer(200), self.nothing_written()
        return None

    def nothing_written(self) -> dict[str, Any]:
        """The parsed response of a call in which no entry was written."""
        raise NotImplementedError

    def _restore(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if "injected" in context:
            entries, failing = context.pop("injected")
            self.report(parsed, entries, failing)

    def report(self, parsed: dict[str, Any], entries: list[Any], failing: dict[int, str]) -> None:
        raise NotImplementedError


class FirehoseFailedPuts(_EntryFaults):
    """PutRecordBatch answers with ``FailedPutCount`` > 0 and per-entry ``ErrorCode``."""

    field = "Records"

    def __init__(self, client: Any, plan: Plan) -> None:
        super().__init__(client, "firehose", "PutRecordBatch", plan)

    def nothing_written(self) -> dict[str, Any]:
        return {"FailedPutCount": 0, "RequestResponses": []}

    def report(self, parsed: dict[str, Any], entries: list[Any], failing: dict[int, str]) -> None:
        delivered = iter(parsed["RequestResponses"])
        parsed["RequestResponses"] = [
            {"ErrorCode": failing[i], "ErrorMessage": "injected"} if i in failing else next(delivered)
            for i in range(len(entries))
        ]
        parsed["FailedPutCount"] = int(parsed.get("FailedPutCount", 0)) + len(failing)


class DynamoDBUnprocessedItems(_EntryFaults):
    """BatchWriteItem answers with the chosen items in ``UnprocessedItems``."""

    def __init__(self, client: Any, plan: Plan) -> None:
        super().__init__(client, "dynamodb", "BatchWriteItem", plan)

    def entries(self, params: dict[str, Any]) -> list[Any]:
        ((self.table, requests),) = params["RequestItems"].items()
        return list(requests)

    def set_entries(self, params: dict[str, Any], entries: list[Any]) -> None:
        params["RequestItems"] = {self.table: entries}

    def nothing_written(self) -> dict[str, Any]:
        return {"UnprocessedItems": {}}

    def report(self, parsed: dict[str, Any], entries: list[Any], failing: dict[int, str]) -> None:
        unprocessed = parsed.setdefault("UnprocessedItems", {}).setdefault(self.table, [])
        unprocessed.extend(entries[i] for i in sorted(failing))


class TimestreamRejections(_EntryFaults):
    """WriteRecords raises ``RejectedRecordsException`` listing the chosen records.

    The plan's code is the rejection reason; ``"existing:N"`` reports a version conflict
    with ``ExistingVersion`` N.  The other records of the call are written, as in Timestream.
    """

    field = "Records"

    def __init__(self, client: Any, plan: Plan) -> None:
        super().__init__(client, "timestream-write", "WriteRecords", plan)

    def nothing_written(self) -> dict[str, Any]:
        return {"RecordsIngested": {"Total": 0, "MemoryStore": 0, "MagneticStore": 0}}

    def report(self, parsed: dict[str, Any], entries: list[Any], failing: dict[int, str]) -> None:
        rejected: list[dict[str, Any]] = []
        for index, code in sorted(failing.items()):
            rejection: dict[str, Any] = {"RecordIndex": index, "Reason": code}
            if code.startswith("existing:"):
                rejection["ExistingVersion"] = int(code.split(":", 1)[1])
                rejection["Reason"] = "A record with a higher version already exists."
            rejected.append(rejection)
        response: Any = {
            "Error": {"Code": "RejectedRecordsException", "Message": "One or more records rejected"},
            "RejectedRecords": rejected,
            "ResponseMetadata": {"HTTPStatusCode": 419},
        }
        raise ClientError(response, "WriteRecords")


class CallErrors:
    """Answers the chosen calls of an operation with an error, without sending them."""

    def __init__(
        self, client: Any, service_id: str, operation: str, fail: Callable[[int, dict[str, Any]], str | None]
    ) -> None:
        self.fail = fail
        self.calls = 0
        self.answered: list[str] = []
        client.meta.events.register(f"before-call.{service_id}.{operation}", self._answer)

    def _answer(self, params: dict[str, Any], **_: Any) -> tuple[_Answer, dict[str, Any]] | None:
        body = params.get("body") or b"{}"
        code = self.fail(self.calls, json.loads(body.decode() if isinstance(body, bytes) else body))
        self.calls += 1
        if code is None:
            return None
        self.answered.append(code)
        return _Answer(400), {
            "Error": {"Code": code, "Message": "Rate exceeded (injected)"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }


class ToggleProxy:
    """A TCP proxy on 127.0.0.1 that forwards to ``target`` while up and refuses while down."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition("//")[2].partition(":")
        self.target = (host, int(port))
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        """Stop listening and cut every open connection: new connections are refused."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._links):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        self._links.update((client_writer, server_writer))
        try:
            await asyncio.gather(
                self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer)
            )
        finally:
            for writer in (client_writer, server_writer):
                self._links.discard(writer)
                writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
