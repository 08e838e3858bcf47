"""A limit-enforcing, fault-injecting Kinesis gateway in front of a local emulator.

No local Kinesis emulator throttles (see LOCAL_STACK.md), so on its own a local run shows
neither ProvisionedThroughputExceeded nor hot shards, and the retry, back-off and
iterator-age code paths never run over the wire.  :class:`KinesisGateway` is a small
HTTP server that speaks the Kinesis JSON 1.1 protocol (``X-Amz-Target:
Kinesis_20131202.<Operation>``, which botocore uses for Kinesis), forwards to kinesis-mock
or moto, and applies AWS's per-shard quotas on the way:

- writes: 1 MiB/s and 1000 records/s per shard.  Over-budget PutRecords entries fail
  individually (``ProvisionedThroughputExceededException``, ``FailedRecordCount`` set) and
  only the in-budget entries reach the backend, as a smaller PutRecords whose results are
  merged back in the original order; an over-budget PutRecord fails whole with HTTP 400.
- reads: five GetRecords calls/s and 2 MiB/s per shard, the shard found from the iterator
  (iterators handed out by GetShardIterator and GetRecords are remembered).
- routing: MD5 of the partition key (or ExplicitHashKey) against the hash ranges the
  backend's own ListShards reports, refreshed after resharding.

A :class:`FaultPlan` adds what emulators never do: failed entries, 500/503 answers,
connections reset before forwarding, responses dropped after the backend accepted the
write, and latency.  The clock is injectable, so limit tests are exact rather than timed.
Every other operation, SubscribeToShard's event stream included, passes through unchanged.

Typical use::

    async with KinesisGateway(kinesis_endpoint) as gateway:
        client = aiobotocore_client("kinesis", endpoint_url=gateway.endpoint)
        ...
        gateway.stats().for_stream("telemetry")

or, from synchronous code, :class:`ThreadedKinesisGateway` with ``start()``/``stop()``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks.gateway.faults import WRITE_OPERATIONS, FaultInjector, FaultPlan
from benchmarks.gateway.limits import Clock, ManualClock, ShardBudget, ShardLimits
from benchmarks.gateway.routing import IteratorDirectory, ShardDirectory, stream_name_of
from benchmarks.gateway.stats import GatewayStats, GatewayStatsSnapshot, ShardStats
from shardline.errors import ConfigurationError, ShardlineError
from shardline.shardmath import ShardInfo, ShardMap

__all__ = [
    "WRITE_OPERATIONS",
    "Clock",
    "FaultPlan",
    "GatewayStatsSnapshot",
    "KinesisGateway",
    "ManualClock",
    "ShardLimits",
    "ShardStats",
    "ThreadedKinesisGateway",
]

TARGET_PREFIX = "Kinesis_20131202."
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
THROTTLED = "ProvisionedThroughputExceededException"
_RESHARDING_OPERATIONS = frozenset(
    {"SplitShard", "MergeShards", "UpdateShardCount", "CreateStream", "DeleteStream"}
)
_STREAMED_OPERATIONS = frozenset({"SubscribeToShard"})
# Headers that describe one hop, or that the gateway recomputes, never forwarded either way.
_HOP_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "expect",
        "content-encoding",
        "date",
        "server",
        "accept-encoding",
    }
)


@dataclass(frozen=True, slots=True)
class _Reply:
    """A buffered HTTP answer, from the backend or made up by the gateway."""

    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else {}


def _json_reply(status: int, document: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> _Reply:
    """A JSON answer; ``headers`` are the backend's (its request id kept, its checksum dropped)."""
    merged: dict[str, str] = {}
    if headers:
        merged.update({k: v for k, v in headers.items() if k.lower() not in {"content-type", "x-amz-crc32"}})
    if not any(k.lower() == "x-amzn-requestid" for k in merged):
        merged["x-amzn-RequestId"] = str(uuid.uuid4())
    merged["Content-Type"] = JSON_CONTENT_TYPE
    return _Reply(status, merged, json.dumps(document, separators=(",", ":")).encode())


def _error_reply(status: int, code: str, message: str) -> _Reply:
    """An error shaped like AWS's JSON protocol errors, which botocore maps by ``__type``."""
    reply = _json_reply(status, {"__type": code, "message": message})
    return _Reply(status, {**reply.headers, "x-amzn-ErrorType": code}, reply.body)


_FOREIGN_ANSWER = _Reply(200, {"Content-Type": "text/html"}, b"<html><body>Sign in to continue</body></html>")
"""What a captive portal or a wrong endpoint answers: 200, and not a Kinesis response."""


def _throttle_message(stream: str, shard_id: str) -> str:
    return f"Rate exceeded for shard {shard_id} in stream {stream}."


def _decoded_length(b64: str) -> int:
    """Bytes a base64 string decodes to, without decoding it."""
    if not b64:
        return 0
    return len(b64) * 3 // 4 - b64[-2:].count("=")


def _entry_size(entry: Mapping[str, Any]) -> int:
    """What AWS counts against the write budget: data plus partition key."""
    data = entry.get("Data")
    key = entry.get("PartitionKey")
    return (_decoded_length(data) if isinstance(data, str) else 0) + (
        len(key.encode()) if isinstance(key, str) else 0
    )


def _route(entry: Mapping[str, Any], shard_map: ShardMap) -> ShardInfo | None:
    """The open shard an entry lands on, or None when the entry is malformed (the backend judges)."""
    key = entry.get("PartitionKey")
    if not isinstance(key, str):
        return None
    explicit = entry.get("ExplicitHashKey")
    try:
        return shard_map.shard_for_key(key, int(explicit) if explicit is not None else None)
    except (ShardlineError, ValueError, TypeError):
        return None


class KinesisGateway:
    """The gateway on one event loop; see the module docstring for what it enforces."""

    def __init__(
        self,
        backend_url: str,
        *,
        limits: ShardLimits | None = None,
        faults: FaultPlan | None = None,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        shard_refresh_seconds: float = 5.0,
        serial_writes: bool = False,
    ) -> None:
        """``serial_writes``: forward one write (PutRecords, PutRecord) per stream at a time.

        moto numbers a shard's records by reading its highest sequence number and adding one
        (its own code says "not safe for concurrency"): two puts to one shard at once can get
        the same number, both are acknowledged and one record is gone.  A producer keeps
        several PutRecords in flight, so in front of moto the writes must queue here.
        kinesis-mock and AWS take concurrent writes.
        """
        if not backend_url.startswith(("http://", "https://")):
            raise ConfigurationError("backend_url must be an http:// or https:// URL")
        self._backend_url = backend_url.rstrip("/")
        self._limits = limits or ShardLimits()
        self._faults = FaultInjector(faults) if faults else None
        self._clock: Clock = clock or time.monotonic
        self._host = host
        self._port = port
        self._shards = ShardDirectory(self._clock, shard_refresh_seconds)
        self._iterators = IteratorDirectory()
        self._budgets: dict[tuple[str, str], ShardBudget] = {}
        self._write_locks: dict[str, asyncio.Lock] | None = {} if serial_writes else None
        self._stats = GatewayStats()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stream_session: aiohttp.ClientSession | None = None
        self._endpoint: str | None = None
        self._operations: dict[str, Callable[[web.Request, bytes], Awaitable[_Reply]]] = {
            "PutRecords": self._put_records,
            "PutRecord": self._put_record,
            "GetShardIterator": self._get_shard_iterator,
            "GetRecords": self._get_records,
        }

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        if self._endpoint is None:
            raise ConfigurationError("the gateway is not started")
        return self._endpoint

    async def start(self) -> str:
        """Bind on ``host`` (a free port unless one was given) and return the endpoint URL."""
        if self._endpoint is not None:
            return self._endpoint
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            connector=aiohttp.TCPConnector(limit=64),
            auto_decompress=True,
        )
        # A subscription holds its backend connection for up to five minutes: from the bounded
        # pool, 64 subscribers would leave every other call waiting for a connection.  Streams
        # get their own pool, bounded by the subscribers themselves.
        self._stream_session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            connector=aiohttp.TCPConnector(limit=0),
            auto_decompress=True,
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        try:
            await self._runner.setup()
            site = web.TCPSite(self._runner, self._host, self._port)
            await site.start()
        except BaseException:
            await self.stop()  # a port in use: leave no sessions or runner behind
            raise
        address = self._runner.addresses[0]
        self._endpoint = f"http://{address[0]}:{address[1]}"
        return self._endpoint

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for session in (self._session, self._stream_session):
            if session is not None:
                await session.close()
        self._session = self._stream_session = None
        self._endpoint = None

    async def __aenter__(self) -> KinesisGateway:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- run-time control and inspection ---------------------------------------------------

    def stats(self) -> GatewayStatsSnapshot:
        """Cumulative per-shard counts so far (safe to call from any thread)."""
        return self._stats.snapshot()

    def set_faults(self, plan: FaultPlan | None) -> None:
        """Replace the fault plan (``None`` for none); its RNG restarts from the plan's seed."""
        self._faults = FaultInjector(plan) if plan else None

    def set_limits(self, limits: ShardLimits) -> None:
        """Replace the quotas; every shard starts again with a full second's budget."""
        self._limits = limits
        self._budgets.clear()

    @property
    def limits(self) -> ShardLimits:
        return self._limits

    def _budget(self, stream: str, shard_id: str) -> ShardBudget:
        key = (stream, shard_id)
        budget = self._budgets.get(key)
        if budget is None:
            budget = self._budgets[key] = ShardBudget(self._limits, self._clock)
        return budget

    def _release(self, stream: str, shard: ShardInfo | None, entry: Any) -> None:
        """Give back the write budget of an entry the backend did not write (routed entries
        only: an entry the gateway could not route was never metered)."""
        if shard is not None and isinstance(entry, dict):
            self._budget(stream, shard.shard_id).release_write(_entry_size(entry))

    # --- the HTTP side ----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self._stats.add("requests")
        target = request.headers.get("X-Amz-Target", "")
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        body = await request.read()
        if operation and "cbor" in request.headers.get("Content-Type", ""):
            # botocore speaks JSON 1.1 to Kinesis; a CBOR body could not be metered, so refuse it loudly.
            return self._respond(
                _error_reply(400, "SerializationException", "the gateway accepts JSON 1.1 only")
            )
        faults = (
            self._faults if operation and self._faults and self._faults.plan.applies_to(operation) else None
        )
        if faults is not None:
            if faults.plan.latency_seconds:
                await asyncio.sleep(faults.plan.latency_seconds)
            if faults.drop_request():
                self._stats.add("dropped_requests")
                return self._reset(request)
            if faults.server_error():
                self._stats.add("injected_server_errors")
                plan = faults.plan
                return self._respond(
                    _error_reply(plan.server_error_status, plan.server_error_code, "injected")
                )
            if faults.foreign_answer():
                self._stats.add("foreign_answers")
                return self._respond(_FOREIGN_ANSWER)
        if operation in _STREAMED_OPERATIONS:
            return await self._stream_through(request, body)
        handler = self._operations.get(operation)
        reply = await handler(request, body) if handler else await self._forward(request, body)
        if operation in _RESHARDING_OPERATIONS:
            stream = stream_name_of(_parse(body))
            if stream:
                self._shards.invalidate(stream)
        if faults is not None and reply.status < 300 and faults.drop_response():
            self._stats.add("dropped_responses")
            return self._reset(request)
        return self._respond(reply)

    @staticmethod
    def _respond(reply: _Reply) -> web.Response:
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)

    @staticmethod
    def _reset(request: web.Request) -> web.StreamResponse:
        """Close the client's connection with a TCP reset and no answer."""
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        return web.Response(status=500)  # never sent: the connection is gone

    def _forward_headers(self, request: web.Request, target: str | None = None) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        if target is not None:
            headers["X-Amz-Target"] = target
        return headers

    async def _forward(self, request: web.Request, body: bytes, *, target: str | None = None) -> _Reply:
        assert self._session is not None
        try:
            async with self._session.request(
                request.method,
                self._backend_url + request.path_qs,
                data=body,
                headers=self._forward_headers(request, target),
            ) as response:
                payload = await response.read()
                headers = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_HEADERS}
                return _Reply(response.status, headers, payload)
        except aiohttp.ClientError as exc:
            return _error_reply(503, "ServiceUnavailable", f"backend unreachable: {type(exc).__name__}")

    async def _forward_write(self, request: web.Request, body: bytes, stream: str | None) -> _Reply:
        """Forward a write to ``stream``, one at a time per stream with ``serial_writes``."""
        locks = self._write_locks
        if locks is None or stream is None:
            return await self._forward(request, body)
        async with locks.setdefault(stream, asyncio.Lock()):
            return await self._forward(request, body)

    async def _stream_through(self, request: web.Request, body: bytes) -> web.StreamResponse:
        """Relay a streaming answer (SubscribeToShard's event stream) chunk by chunk."""
        assert self._stream_session is not None
        try:
            async with self._stream_session.request(
                request.method,
                self._backend_url + request.path_qs,
                data=body,
                headers=self._forward_headers(request),
            ) as response:
                headers = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_HEADERS}
                out = web.StreamResponse(status=response.status, headers=headers)
                await out.prepare(request)
                try:
                    async for chunk in response.content.iter_any():
                        await out.write(chunk)
                    await out.write_eof()
                except ConnectionError:
                    pass  # the subscriber went away; nothing left to relay to
                except aiohttp.ClientError:
                    # The backend failed after its answer began.  The status line is sent, so an
                    # error answer now would land inside the event stream as data and the stream
                    # would end cleanly; a reset is what a real broken connection looks like.
                    self._reset(request)
                return out
        except aiohttp.ClientError as exc:
            reply = _error_reply(503, "ServiceUnavailable", f"backend unreachable: {type(exc).__name__}")
            return self._respond(reply)

    def _lister(self, request: web.Request) -> Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any]]]:
        """ListShards against the backend with the caller's credentials scope (region, account)."""

        async def list_shards(document: Mapping[str, Any]) -> Mapping[str, Any]:
            reply = await self._forward(
                request, json.dumps(document).encode(), target=TARGET_PREFIX + "ListShards"
            )
            if reply.status != 200:
                raise _BackendError(reply)
            result: Mapping[str, Any] = reply.json()
            return result

        return list_shards

    async def _shard_map(self, request: web.Request, stream: str) -> ShardMap | None:
        try:
            return await self._shards.shard_map(stream, self._lister(request))
        except _BackendError:
            return None  # unknown stream and the like: the backend answers the call itself

    # --- metered operations -----------------------------------------------------------------

    async def _put_records(self, request: web.Request, raw: bytes) -> _Reply:
        body = _parse(raw)
        stream = stream_name_of(body)
        entries = body.get("Records")
        if stream is None or not isinstance(entries, list) or not entries:
            return await self._forward(request, raw)
        shard_map = await self._shard_map(request, stream)
        if shard_map is None:
            return await self._forward_write(request, raw, stream)
        faults = self._faults if self._faults and self._faults.plan.applies_to("PutRecords") else None
        results: list[dict[str, Any] | None] = [None] * len(entries)
        forwarded: list[int] = []
        routed: list[ShardInfo | None] = [None] * len(entries)
        refused: dict[str, list[int]] = {}
        for index, entry in enumerate(entries):
            shard = _route(entry, shard_map) if isinstance(entry, dict) else None
            routed[index] = shard
            if shard is None:
                forwarded.append(index)
                continue
            if faults is not None and faults.fail_entry():
                code = faults.plan.entry_error_code
                results[index] = {"ErrorCode": code, "ErrorMessage": "injected"}
                self._stats.add("injected_entry_failures")
                continue
            size = _entry_size(entry)
            if self._budget(stream, shard.shard_id).admit_write(size):
                forwarded.append(index)
            else:
                results[index] = {
                    "ErrorCode": THROTTLED,
                    "ErrorMessage": _throttle_message(stream, shard.shard_id),
                }
                counts = refused.setdefault(shard.shard_id, [0, 0])
                counts[0] += 1
                counts[1] += size
        for shard_id, (records, size) in refused.items():
            self._stats.add_shard(stream, shard_id, throttled_records=records, throttled_bytes=size)
        extra: dict[str, Any] = {}
        headers: Mapping[str, str] | None = None
        if forwarded:
            if len(forwarded) == len(entries):
                reply = await self._forward_write(request, raw, stream)
            else:
                subset = dict(body, Records=[entries[i] for i in forwarded])
                reply = await self._forward_write(request, json.dumps(subset).encode(), stream)
            if reply.status != 200:
                # a whole-call error from the backend stands as it is; nothing was written
                for index in forwarded:
                    self._release(stream, routed[index], entries[index])
                return reply
            answer = reply.json()
            headers = reply.headers
            if "EncryptionType" in answer:
                extra["EncryptionType"] = answer["EncryptionType"]
            accepted: dict[str, list[int]] = {}
            for index, result in zip(forwarded, answer.get("Records", ()), strict=False):
                results[index] = result
                shard_id = result.get("ShardId")
                if not shard_id:
                    self._release(stream, routed[index], entries[index])  # the backend failed it
                    continue
                expected = routed[index]
                if expected is not None and expected.shard_id != shard_id:
                    self._shards.invalidate(stream)  # the backend resharded behind the gateway's back
                counts = accepted.setdefault(shard_id, [0, 0])
                counts[0] += 1
                counts[1] += _entry_size(entries[index])
            for shard_id, (records, size) in accepted.items():
                self._stats.add_shard(stream, shard_id, accepted_records=records, accepted_bytes=size)
        final = [
            result or {"ErrorCode": "InternalFailure", "ErrorMessage": "no result"} for result in results
        ]
        failed = sum(1 for result in final if "ErrorCode" in result)
        return _json_reply(200, {"FailedRecordCount": failed, "Records": final, **extra}, headers)

    async def _put_record(self, request: web.Request, raw: bytes) -> _Reply:
        body = _parse(raw)
        stream = stream_name_of(body)
        shard_map = await self._shard_map(request, stream) if stream else None
        shard = _route(body, shard_map) if shard_map is not None else None
        if stream is None or shard is None:
            return await self._forward_write(request, raw, stream)
        faults = self._faults if self._faults and self._faults.plan.applies_to("PutRecord") else None
        if faults is not None and faults.fail_entry():
            self._stats.add("injected_entry_failures")
            return _error_reply(faults.plan.entry_error_status, faults.plan.entry_error_code, "injected")
        size = _entry_size(body)
        if not self._budget(stream, shard.shard_id).admit_write(size):
            self._stats.add_shard(stream, shard.shard_id, throttled_records=1, throttled_bytes=size)
            return _error_reply(400, THROTTLED, _throttle_message(stream, shard.shard_id))
        reply = await self._forward_write(request, raw, stream)
        if reply.status == 200:
            shard_id = reply.json().get("ShardId") or shard.shard_id
            self._stats.add_shard(stream, shard_id, accepted_records=1, accepted_bytes=size)
        else:
            self._budget(stream, shard.shard_id).release_write(size)  # nothing was written
        return reply

    async def _get_shard_iterator(self, request: web.Request, raw: bytes) -> _Reply:
        reply = await self._forward(request, raw)
        body = _parse(raw)
        stream = stream_name_of(body)
        shard_id = body.get("ShardId")
        if reply.status == 200 and stream and isinstance(shard_id, str):
            self._iterators.remember(reply.json().get("ShardIterator"), stream, shard_id)
        return reply

    async def _get_records(self, request: web.Request, raw: bytes) -> _Reply:
        iterator = _parse(raw).get("ShardIterator")
        shard = self._iterators.lookup(iterator if isinstance(iterator, str) else None)
        if shard is None:
            return await self._forward(request, raw)  # an iterator the gateway never saw: not metered
        stream, shard_id = shard
        budget = self._budget(stream, shard_id)
        if not budget.admit_read_call():
            self._stats.add_shard(stream, shard_id, get_records_throttled=1)
            return _error_reply(400, THROTTLED, _throttle_message(stream, shard_id))
        reply = await self._forward(request, raw)
        if reply.status != 200:
            return reply
        answer = reply.json()
        records = answer.get("Records", ())
        size = sum(_entry_size(record) for record in records)
        budget.charge_read_bytes(size)
        self._iterators.remember(answer.get("NextShardIterator"), stream, shard_id)
        self._stats.add_shard(
            stream, shard_id, get_records_calls=1, read_records=len(records), read_bytes=size
        )
        return reply


class _BackendError(Exception):
    """The backend refused a call the gateway made on its own behalf."""

    def __init__(self, reply: _Reply) -> None:
        super().__init__(f"backend answered HTTP {reply.status}")
        self.reply = reply


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


class ThreadedKinesisGateway:
    """A :class:`KinesisGateway` on its own event loop in a daemon thread, for sync callers."""

    def __init__(
        self,
        backend_url: str,
        *,
        limits: ShardLimits | None = None,
        faults: FaultPlan | None = None,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        shard_refresh_seconds: float = 5.0,
        serial_writes: bool = False,
    ) -> None:
        self.gateway = KinesisGateway(
            backend_url,
            limits=limits,
            faults=faults,
            clock=clock,
            host=host,
            port=port,
            shard_refresh_seconds=shard_refresh_seconds,
            serial_writes=serial_writes,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return self.gateway.endpoint

    def start(self, timeout: float = 30.0) -> str:
        if self._loop is not None:
            return self.gateway.endpoint
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="kinesis-gateway", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            return asyncio.run_coroutine_threadsafe(self.gateway.start(), loop).result(timeout)
        except BaseException:
            # Without this the loop thread outlived a failed start, and the next start()
            # took the running loop for a started gateway and failed with "not started".
            self.stop(timeout)
            raise

    def stop(self, timeout: float = 30.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.gateway.stop(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            loop.close()
            self._loop = self._thread = None

    def stats(self) -> GatewayStatsSnapshot:
        return self.gateway.stats()

    def set_faults(self, plan: FaultPlan | None) -> None:
        loop = self._loop
        if loop is None:
            self.gateway.set_faults(plan)
        else:
            loop.call_soon_threadsafe(self.gateway.set_faults, plan)

    def set_limits(self, limits: ShardLimits) -> None:
        loop = self._loop
        if loop is None:
            self.gateway.set_limits(limits)
        else:
            loop.call_soon_threadsafe(self.gateway.set_limits, limits)

    def __enter__(self) -> ThreadedKinesisGateway:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
