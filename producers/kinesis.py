"""The asynchronous Kinesis producer: validation, routing, back-pressure and the sender loop.

:class:`KinesisProducer` validates each record at ``send()`` (typed errors before any network
call), routes it to its shard through the cached shard map and hands it to the
:class:`~producers.accumulator.Accumulator`.  One sender task does all the I/O: it waits on
a single event (a full request, the linger deadline of the oldest open aggregate, a retry or
pacing deadline, a completed request), takes the next request from the accumulator and sends
it with PutRecords, at most ``max_in_flight`` at a time.  Of a partial failure only the failed
entries go back, at the head of their shard's queue, after a jittered exponential backoff;
errors that cannot succeed on retry fail the records' futures at once.

Hot-path costs are paid per batch or per entry: one linger deadline per open aggregate, one
rate-limiter check per entry, metrics per response.  ``send_many()`` validates and routes a
batch in one pass and appends each shard's records to its aggregate as one run, with no
per-record object; acknowledgements go back per entry as runs (:mod:`producers.tickets`).
Per-record objects are what made this path slow: beyond their own cost, every object that
outlives its batch makes each pass of Python's garbage collector longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AsyncExitStack
from functools import partial
from types import TracebackType
from typing import Any, Self, TypeVar, cast

from botocore.config import Config

from producers import put_records_body
from producers.accumulator import Accumulator, Entry, Member, member_hash_key
from producers.config import ProducerConfig
from producers.drain import DrainRate
from producers.keys import KeyStrategy, RangeAware
from producers.keys import resolve as resolve_key
from producers.ratelimit import ShardRateLimiter
from producers.tickets import BatchAcks, BatchTicket, Extras, SendRun, SingleTicket
from shardline import metrics_events as events
from shardline.aggregation import AggregateBuilder, AggregationCaches, single_aggregate_size
from shardline.clients import aiobotocore_client
from shardline.errormap import from_error_code, map_aws_errors
from shardline.errors import (
    BackgroundTaskError,
    BufferFullError,
    ClosedError,
    ConfigurationError,
    DeliveryError,
    InvalidPartitionKeyError,
    RecordTooLargeError,
    ShardlineError,
    ShardNotFoundError,
    ThrottledError,
    TransientServiceError,
    ValidationError,
)
from shardline.events_wait import wait_until_set
from shardline.limits import DEFAULT_MAX_RECORD_BYTES, PARTITION_KEY_MAX_CHARS, KiB
from shardline.metrics import MetricsObserver, guard_observer, takes_event
from shardline.records import Ack, Record
from shardline.retry import RetryPolicy
from shardline.serde import serialize
from shardline.shardmath import DEFAULT_KEY_CACHE_SIZE, ShardInfo, ShardMap, list_shards
from shardline.tasks import cancel_requested
from shardline.validation import (
    batch_columns,
    is_text,
    require_text,
    validate_data,
    validate_explicit_hash_key,
    validate_partition_key,
    validate_record_size,
)

__all__ = ["KinesisProducer"]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

_RUN_MAX_RECORDS = 512
"""A run of ``send()`` records goes to the accumulator once it holds this many (or sooner).

Until then a run is invisible to the test for a full request, so it is kept well below one
(500 entries); longer runs gained little (the batch path per record: 1.44 us in calls of 64
records, 1.32 at 256, 1.21 at 1,024)."""

_RUN_MAX_BYTES = 1024 * 1024
"""... or once its records hold this many bytes: a fifth of the largest PutRecords request."""

Serializer = Callable[[Any], bytes]

_OWN_CLIENT_CONFIG = Config(parameter_validation=False)
"""For the client the producer builds itself: every record is validated before it is buffered
(typed errors before any network call), so botocore's walk over every entry of every request
repeats that work (measured against kinesalite: 17% of a PutRecords call of 500 plain 100-byte
entries, 5% of one of five 50 KiB aggregates).  The same client encodes its PutRecords bodies with
:mod:`producers.put_records_body`.  An injected client is used as it is."""

PACED_VISIT_MAX = 0.5
"""The longest step of the grid on which shards waiting for rate tokens are visited (the
linger, capped here): see :mod:`producers.ratelimit`."""


@contextlib.contextmanager
def _naming_the_strategy(strategy: Any) -> Iterator[None]:
    """Re-raise a refused partition key with the key strategy that made it (``keys.salted`` adds
    a suffix, so a device id of 255 characters becomes a key of 257)."""
    try:
        yield
    except InvalidPartitionKeyError as exc:
        raise InvalidPartitionKeyError(f"{exc} (made by the key strategy {strategy!r})") from None


class KinesisProducer:
    """Batches, aggregates, paces and retries records into one Kinesis stream.

    Use it as an async context manager (``start()``/``close()`` otherwise)::

        async with KinesisProducer("telemetry", key_strategy=keys.field("device_id")) as producer:
            fut = await producer.send(b"...", partition_key="dev-42")  # returns once buffered
            ack = await fut

    ``client`` (an aiobotocore Kinesis client) or ``session`` may be injected; otherwise one
    is built from the standard AWS configuration (profile, region, ``AWS_ENDPOINT_URL_KINESIS``).
    Keyword ``options`` override fields of ``config`` (``aggregate=False``, ``linger=0.05``...).
    """

    def __init__(
        self,
        stream_name: str | None = None,
        *,
        stream_arn: str | None = None,
        config: ProducerConfig | None = None,
        key_strategy: KeyStrategy | None = None,
        serializer: Serializer | None = None,
        client: Any = None,
        session: Any = None,
        endpoint_url: str | None = None,
        observer: MetricsObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        **options: Any,
    ) -> None:
        if (stream_name is None) == (stream_arn is None):
            raise ConfigurationError("give exactly one of stream_name and stream_arn")
        cfg = config or ProducerConfig()
        self.config = cfg.with_options(**options) if options else cfg
        self.stream_name = stream_name
        self.stream_arn = stream_arn
        self._stream_label = stream_name or stream_arn or ""
        self._stream_param = {"StreamName": stream_name} if stream_name else {"StreamARN": stream_arn}
        self._key_strategy = key_strategy
        self._serializer = serializer
        self._injected_client = client
        self._session = session
        self._endpoint_url = endpoint_url
        self._observer: MetricsObserver = guard_observer(observer)
        # Per-entry and per-shard events of every response, built only when the observer
        # takes them (the default NullObserver takes none).
        self._reports_entry_latency = takes_event(self._observer, events.SEND_TO_ACK_LATENCY)
        self._reports_shard_records = takes_event(self._observer, events.SHARD_RECORDS)
        self._clock = clock
        self._policy = RetryPolicy(
            max_attempts=self.config.max_attempts,
            initial_backoff=self.config.initial_backoff,
            max_backoff=self.config.max_backoff,
            deadline=self.config.record_ttl,
        )
        self._limiter = (
            ShardRateLimiter(
                self.config.rate_limit_percent,
                visit=min(self.config.linger, PACED_VISIT_MAX),
                clock=clock,
            )
            if self.config.rate_limit_percent is not None
            else None
        )
        self._client: Any = None
        self._stack: AsyncExitStack | None = None
        self._map: ShardMap | None = None
        self._listed: list[ShardInfo] = []  # the ListShards answer self._map was built from
        self._ranges_bound: ShardMap | None = None  # the map a RangeAware key strategy last took
        # Partition key -> shard id under the current map, for send(): one dict lookup
        # instead of a call per record.  Replaced whenever the map is.
        self._shard_ids: dict[str, str] = {}
        self._acc: Accumulator | None = None
        # The send() records not yet in the accumulator (see producers.tickets.SendRun).
        self._send_run: SendRun | None = None
        self._max_record_bytes = self.config.max_record_bytes or DEFAULT_MAX_RECORD_BYTES
        self._fast_key_limit = 0
        self._buffered_records = 0
        self._buffered_bytes = 0
        self._space_waiters: list[asyncio.Future[None]] = []
        # Flush generations (see flush()): records buffered now belong to ``_epoch``; the
        # records of each generation not resolved yet, and the flushes waiting for theirs.
        self._epoch = 0
        self._epoch_pending: dict[int, int] = {}
        self._flush_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wakeup: asyncio.Event | None = None
        self._sender: asyncio.Task[None] | None = None
        # Each PutRecords request task and the entries it carries, so a failure can resolve them.
        self._in_flight: dict[asyncio.Task[None], list[Entry]] = {}
        # Entry bytes of the requests in flight (each one's count, and their sum): what
        # max_in_flight_bytes bounds, since each request also holds its serialised body.
        self._request_bytes: dict[asyncio.Task[None], int] = {}
        self._in_flight_bytes = 0
        self._background: set[asyncio.Task[None]] = set()
        self._busy: set[str] = set()
        self._flushing = 0
        self._closing = False
        self._closed = False
        self._started = False
        self._failure: BackgroundTaskError | None = None
        self._timer_armed = False
        self._sender_woken = False  # set only while the sender's wake-up event is set
        self._room_wanted = False  # a send() found the buffer full since the sender's last pass
        self._refresh_lock: asyncio.Lock | None = None
        # Refreshes begun so far, and the number and outcome (None: it listed the shards) of
        # the last one that ended: callers that waited for the lock share a later one's.
        self._refreshes_begun = 0
        self._last_refresh: tuple[int, Exception | None] = (0, None)
        self._next_refresh = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting = False  # started and neither closing nor closed: send() checks only this
        # Read on every send(): plain attributes instead of self.config.<field> lookups.
        self._max_buffered_records = self.config.buffer_max_records
        # The byte limit send() checks: the record buffer cap, or lower under drain-rate
        # admission (_note_drain lowers and raises it), so admission costs send() nothing.
        self._max_buffered_bytes = self.config.record_buffer_bytes
        self._record_ttl = self.config.record_ttl
        self._drain: DrainRate | None = None
        if self.config.admission == "drain-rate":
            self._drain = DrainRate(
                window=self.config.record_ttl * self.config.admission_ttl_fraction,
                # A stale estimate admits records that only their TTL can get out: it has
                # to follow a slowdown within a fraction of that TTL.
                horizon=min(2.0, self.config.record_ttl / 4),
                floor=self.config.max_batch_bytes,
                ceiling=self.config.record_buffer_bytes,
            )
            self._max_buffered_bytes = self._drain.limit()
        # Since when the producer has had more to send than it could (None: it has not);
        # only such time counts towards the drain rate.
        self._backlog_from: float | None = None

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the client, learn the stream's shards and record size limit, start the sender."""
        if self._closed:  # before the started test: a closed producer stays started
            raise ClosedError("producer was closed")
        if self._started:
            return
        self._stack = AsyncExitStack()
        try:
            self._client = await self._stack.enter_async_context(
                aiobotocore_client(
                    "kinesis",
                    session=self._session,
                    client=self._injected_client,
                    endpoint_url=self._endpoint_url,
                    config=_OWN_CLIENT_CONFIG,
                )
            )
            if self._injected_client is None:
                put_records_body.install(self._client)
            if self.config.max_record_bytes is None:
                self._max_record_bytes = await self._stream_max_record_bytes()
            # A record must fit one request: a bigger one (a stream of up to 10 MiB records,
            # or a small max_batch_bytes) was accepted by send() and then never taken into a
            # request, holding its shard's queue until its time to live ran out.
            self._max_record_bytes = min(self._max_record_bytes, self.config.max_batch_bytes)
            await self._load_shard_map()
            if not self._bind_key_ranges():
                raise ConfigurationError("the key strategy's bind_ranges refused the stream's shard ranges")
        except BaseException:
            await self._stack.aclose()
            raise
        self._fast_key_limit = (self._max_record_bytes - 4 * PARTITION_KEY_MAX_CHARS) or 0
        # The entry also counts its partition key (<= 256 chars, <= 1 KiB of UTF-8).
        max_aggregate = min(
            self.config.aggregate_max_bytes, self._max_record_bytes - 4 * PARTITION_KEY_MAX_CHARS
        )
        self._acc = Accumulator(
            aggregate=self.config.aggregate,
            # one set of encoding caches for every shard's builders: memory bounded per producer
            builder_factory=partial(
                AggregateBuilder, max_aggregate, self.config.event_id_key, AggregationCaches()
            ),
            max_entries=self.config.max_batch_entries,
            max_bytes=self.config.max_batch_bytes,
        )
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._sender_woken = False
        self._refresh_lock = asyncio.Lock()
        self._next_refresh = self._clock() + self.config.shard_refresh_interval
        self._sender = asyncio.create_task(self._run(), name=f"kinesis-sender:{self._stream_label}")
        self._sender.add_done_callback(self._on_sender_done)
        self._started = True
        self._accepting = True

    async def _stream_max_record_bytes(self) -> int:
        with map_aws_errors("kinesis"):
            summary = await self._client.describe_stream_summary(**self._stream_param)
        kib = summary.get("StreamDescriptionSummary", {}).get("MaxRecordSizeInKiB")
        return int(kib) * KiB if kib else DEFAULT_MAX_RECORD_BYTES

    async def _load_shard_map(self) -> ShardMap:
        listing = list_shards(self._client, stream_name=self.stream_name, stream_arn=self.stream_arn)
        with map_aws_errors("kinesis"):
            shards = await self._answered_within_ttl(listing, "ListShards")
        if self._map is not None and shards == self._listed:
            # Unchanged (the periodic check, nearly always): keep the map in use, with its warm
            # key cache, and the object others route with (stream-bench's generator routes new
            # keys with this map, so the producer finds them cached instead of hashing again).
            return self._map
        shard_map = ShardMap.from_shards(shards)
        if not shard_map.open_shards:
            raise ShardNotFoundError(f"stream {self._stream_label!r} has no open shards")
        self._map = shard_map
        self._listed = shards
        self._shard_ids = {}
        return shard_map

    def _bind_key_ranges(self) -> bool:
        """Give a range-aware key strategy the open shards' hash-key ranges, once per shard map.

        The strategy is user code, so what it raises is caught: returns False (the strategy
        keeps its old ranges and is offered the new ones at the next refresh).  Called after a
        refresh has put the new map in use and re-planned the buffer: raised from inside the
        map's loading, it stopped the refresh between the two, no later refresh re-planned (the
        listing no longer changed), and the periodic refresh task died with it, failing the
        producer and every pending record.
        """
        strategy = self._key_strategy
        shard_map = self._map
        if not isinstance(strategy, RangeAware) or shard_map is None or self._ranges_bound is shard_map:
            return True
        try:
            strategy.bind_ranges([(s.starting_hash_key, s.ending_hash_key) for s in shard_map.open_shards])
        except Exception as exc:  # noqa: BLE001 - user code: logged, the ranges offered again later
            _log.warning(
                "stream %s: the key strategy's bind_ranges raised %s; it keeps its previous ranges",
                self._stream_label,
                type(exc).__name__,
            )
            return False
        self._ranges_bound = shard_map
        return True

    async def flush(self) -> None:
        """Send everything buffered now, waiting without linger until all of it is resolved.

        Each record's future (or batch ticket) holds its outcome: an Ack or the error.  If the
        sender (or a request it started) died, every pending record has already failed and
        this raises the :class:`~shardline.errors.BackgroundTaskError` naming the cause.
        """
        if self._failure is not None:
            raise self._failure
        if not self._started or self._closed:
            raise ClosedError("producer not started or already closed")
        self._require_own_loop()
        assert self._wakeup is not None and self._loop is not None
        self._flushing += 1
        try:
            # Waits for the records buffered now, not for an empty buffer: with another task
            # sending all the while, the buffer never emptied and flush() never returned.
            try:
                self._buffer_send_run()  # the open run's records are counted in their generation
            except Exception:
                if self._failure is None:
                    raise
                raise self._failure from None  # every pending record has failed with it
            target = self._epoch
            self._epoch += 1
            self._wakeup.set()
            if self._buffered_records and min(self._epoch_pending, default=target + 1) <= target:
                waiter: asyncio.Future[None] = self._loop.create_future()
                self._flush_waiters.append((target, waiter))
                try:
                    await waiter  # also resolved when the producer fails (nothing is left buffered)
                finally:
                    with contextlib.suppress(ValueError):
                        self._flush_waiters.remove((target, waiter))
        finally:
            self._flushing -= 1
        if self._failure is not None:
            raise self._failure

    async def close(self, timeout: float | None = None) -> None:
        """Flush, stop the sender and release the client; further sends raise ClosedError.

        With ``timeout``, records still pending after that many seconds fail with
        :class:`~shardline.errors.DeliveryError` and close returns, so every record is
        delivered or reported either way.  Raises the producer's
        :class:`~shardline.errors.BackgroundTaskError` if its background work died.
        """
        if self._closed:
            return
        if self._started:
            self._require_own_loop()
        self._accepting = False
        if self._started:
            self._closing = True
            abandoned = False
            try:
                if timeout is None:
                    await self.flush()
                else:
                    try:
                        await asyncio.wait_for(self.flush(), timeout)
                    except TimeoutError:
                        abandoned = True
                        self._abandon(DeliveryError(f"producer closed after {timeout}s before delivery"))
            except asyncio.CancelledError:
                # The caller's own bound on close (wait_for, a cancelled task): what is still
                # pending fails now, and the requests stop, instead of close outliving it.
                abandoned = True
                self._abandon(DeliveryError("producer close was cancelled before delivery"))
                raise
            finally:
                await self._stop_background(cancel=abandoned or self._failure is not None)
                if self._stack is not None:
                    await self._stack.aclose()
                self._closed = True
        self._closed = True

    async def _stop_background(self, *, cancel: bool) -> None:
        """End the sender and every request and refresh task; nothing is left running.

        ``cancel`` when every pending record was already failed (the producer failed, or the
        close timeout ran out): requests still running have nobody left to report to.
        """
        assert self._wakeup is not None and self._sender is not None
        self._wakeup.set()
        tasks = [self._sender, *self._in_flight, *self._background]
        if cancel:
            for task in tasks:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _require_started(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed or self._closing:
            raise ClosedError("producer is closed")
        if not self._started:
            raise ClosedError("producer not started; use 'async with' or await start()")

    def _require_own_loop(self) -> None:
        """Raise ``RuntimeError`` when called from another event loop than the one that started
        the producer (another thread's, usually), as asyncio's own primitives do.

        Its buffer, events and futures belong to that loop: a call from elsewhere raced its
        bookkeeping and left the caller a future it could not await.  Not checked on every
        ``send()``: a loop lookup costs a ``getpid()`` system call in CPython 3.11 (~0.2 us),
        so ``send()`` checks when it opens a run of records or waits for room.
        """
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError(
                f"{self!r} belongs to the event loop that started it and was called from another;"
                " from another thread use SyncKinesisProducer or asyncio.run_coroutine_threadsafe"
            )

    @property
    def shard_map(self) -> ShardMap:
        """The current shard map (refreshed on splits and merges)."""
        if self._map is None:
            raise ClosedError("producer not started")
        return self._map

    @property
    def max_record_bytes(self) -> int:
        return self._max_record_bytes

    @property
    def buffered(self) -> tuple[int, int]:
        """(records, bytes) buffered or in flight: what the buffer caps bound."""
        return self._buffered_records, self._buffered_bytes

    @property
    def admission_bytes(self) -> int:
        """Bytes that may be buffered or in flight before ``send()`` waits, now.

        The record buffer cap, or less under ``admission="drain-rate"`` once the drain rate
        is measured.
        """
        return self._max_buffered_bytes

    @property
    def drain_rate(self) -> float | None:
        """Measured bytes delivered per backlogged second (``None``: not measured, or off)."""
        return None if self._drain is None else self._drain.rate

    # --- sending ----------------------------------------------------------------------------

    async def send(
        self,
        data: Any,
        *,
        partition_key: str | None = None,
        explicit_hash_key: int | None = None,
        event_id: str | None = None,
        block: bool | None = None,
    ) -> asyncio.Future[Ack]:
        """Buffer one record; the returned future resolves to its Ack (or its delivery error).

        ``data`` is bytes, a :class:`~shardline.Record`, or any object when a serializer was
        given.  Without ``partition_key`` the key strategy picks one.  Waits while the buffer
        is full (``block=False`` raises :class:`~shardline.errors.BufferFullError` instead).
        ``event_id`` (or ``Record.event_id``) travels in the record's KPL ``event_id`` tag:
        Kinesis entries carry no headers, so a record with an id is always sent inside an
        aggregate (alone, when aggregation is off), and Shardline's consumers (and any KPL
        de-aggregator that reads tags) give it back as ``ConsumedRecord.event_id``.
        """
        if self._accepting is not True:
            self._require_started()
        if (
            type(data) is bytes
            and type(partition_key) is str
            and explicit_hash_key is None
            and event_id is None
            and 0 < (key_length := len(partition_key)) <= PARTITION_KEY_MAX_CHARS
            and (size := len(data) + key_length) <= self._fast_key_limit
        ):
            # Already valid: bytes with a short key (the common case, checked inline).
            item_key = partition_key
            ehk = None
            payload = data
        elif type(data) is Record:
            record: Record = data
            partition_key = record.partition_key if partition_key is None else partition_key
            if explicit_hash_key is None:
                explicit_hash_key = record.explicit_hash_key
            if event_id is None:
                event_id = record.event_id
            item_key, ehk, payload, size = self._prepare(
                record, record.data, partition_key, explicit_hash_key, event_id
            )
        else:
            item_key, ehk, payload, size = self._prepare(
                data, data, partition_key, explicit_hash_key, event_id
            )
        if self._buffered_records >= self._max_buffered_records or (
            self._buffered_bytes + size > self._max_buffered_bytes and self._buffered_records
        ):
            await self._wait_for_space(1, size, block)
        # Routed first: a key no open shard owns raises before anything is kept.
        if ehk is None:
            shard_ids = self._shard_ids
            shard_id = shard_ids.get(item_key)
            if shard_id is None:
                assert self._map is not None
                shard_id = self._map.shard_for_key(item_key).shard_id
                if len(shard_ids) >= DEFAULT_KEY_CACHE_SIZE:
                    shard_ids.clear()  # start over, as ShardMap's own cache does
                shard_ids[item_key] = shard_id
        else:
            assert self._map is not None
            shard_id = self._map.shard_for_key(item_key, ehk).shard_id
        ticket = SingleTicket(loop=self._loop)
        # Joins the open run of send() records (see producers.tickets.SendRun): list appends
        # here, and one batch call into the accumulator per run.
        run = self._send_run
        if run is None:
            self._require_own_loop()  # once a run: see _require_own_loop
            run = self._send_run = SendRun(self._clock(), self._epoch)
        index = len(run.keys)
        run.keys.append(item_key)
        run.datas.append(payload)
        run.tickets.append(ticket)
        if ehk is not None or event_id is not None:
            run.extras[index] = (ehk, event_id)
        order = run.groups.get(shard_id)
        if order is None:
            run.groups[shard_id] = [index]
        else:
            order.append(index)
        run.nbytes += size
        self._buffered_records += 1
        self._buffered_bytes += size
        if index + 1 >= _RUN_MAX_RECORDS or run.nbytes >= _RUN_MAX_BYTES:
            self._buffer_send_run()
            acc = self._acc
            assert acc is not None
            if not self._sender_woken and (not self._timer_armed or acc.has_full_request):
                self._wake_sender()
        elif not self._sender_woken and not self._timer_armed:
            self._wake_sender()
        return ticket

    async def send_record(self, record: Record, *, block: bool | None = None) -> asyncio.Future[Ack]:
        """Buffer a :class:`~shardline.Record`; same as ``send(record)``."""
        return await self.send(record, block=block)

    async def send_and_wait(
        self,
        data: Any,
        *,
        partition_key: str | None = None,
        explicit_hash_key: int | None = None,
        event_id: str | None = None,
    ) -> Ack:
        """Send one record and wait for its acknowledgement (or raise its delivery error)."""
        future = await self.send(
            data, partition_key=partition_key, explicit_hash_key=explicit_hash_key, event_id=event_id
        )
        return await future

    async def send_many(
        self,
        values: Iterable[Any],
        keys: Sequence[str | None] | None = None,
        *,
        block: bool | None = None,
    ) -> asyncio.Future[BatchAcks]:
        """Buffer many records at once: the cheapest path, one future for the whole batch.

        ``values`` are what :meth:`send` accepts: bytes, :class:`~shardline.Record` objects,
        or objects for the serializer.  ``keys``, when given, holds one partition key (or
        ``None``) per value; otherwise each record's own key or the key strategy is used.
        Bytes values with str keys are the cheapest call of all: they are validated and
        routed as columns, with no object per record (build no ``Record`` just to send).

        Every record is validated before any is buffered, so a bad record raises its typed
        error (naming its position) and nothing of the batch is accepted.  Any number of
        records is fine: the producer splits them into PutRecords requests.  A batch larger
        than admission allows (the buffer caps, or the drain-rate limit) is taken in parts,
        in order, each when there is room for it, so a slow endpoint makes this wait instead
        of letting the batch's tail expire in the buffer (``block=False`` takes it whole or
        raises).  The future resolves to :class:`~producers.tickets.BatchAcks` (acks in
        input order; failures in ``.failed``).
        """
        if self._accepting is not True:
            self._require_started()
        self._require_own_loop()
        routed_by = self._map
        out_keys, datas, extras, groups, total = self._route_many(values, keys)
        count = len(datas)
        assert self._loop is not None
        future: asyncio.Future[BatchAcks] = self._loop.create_future()
        ticket = BatchTicket(future, out_keys, datas, extras, self._epoch)
        oversized = count > 1 and (total > self._max_buffered_bytes or count > self._max_buffered_records)
        if oversized and (block if block is not None else self.config.block_when_full):
            await self._enqueue_in_parts(ticket, groups, routed_by)
            return future
        if self._buffered_records and (
            self._buffered_records + count > self._max_buffered_records
            or self._buffered_bytes + total > self._max_buffered_bytes
        ):
            await self._wait_for_space(count, total, block)
        self._enqueue_many(ticket, groups, total, routed_by)
        return future

    async def _enqueue_in_parts(
        self, ticket: BatchTicket, groups: dict[str, list[int]], routed_by: ShardMap | None
    ) -> None:
        """Buffer a batch larger than admission allows: consecutive parts of a quarter of the
        limit each (re-read per part, as the drain rate moves), each when there is room.

        Records go in input order, so each key's records keep their order.  Should the
        producer fail or close meanwhile, the records not buffered yet fail with that error
        in the batch's acks (what was buffered is still delivered or reported; with nothing
        buffered yet the error is raised, as for a batch taken whole); a cancelled
        caller fails them with :class:`DeliveryError` and the cancellation goes on.
        """
        keys, datas = ticket.keys, ticket.datas
        count = len(datas)
        orders = list(groups.items())
        taken = [0] * len(orders)  # per shard: how much of its positions is buffered
        start = 0
        try:
            while start < count:
                part_bytes = max(self._max_buffered_bytes // 4, 1)
                part_records = max(self._max_buffered_records // 4, 1)
                stop = min(count, start + part_records)
                end, nbytes = start, 0
                while end < stop:
                    data = datas[end]
                    assert data is not None  # not buffered yet, so not released
                    size = len(data) + len(keys[end])
                    if end > start and nbytes + size > part_bytes:
                        break
                    nbytes += size
                    end += 1
                await self._wait_for_space(end - start, nbytes, True)  # returns at once if it fits
                part: dict[str, list[int]] = {}
                for i, (shard_id, order) in enumerate(orders):
                    first = taken[i]
                    last = bisect_left(order, end, first)
                    if last > first:
                        part[shard_id] = order[first:last]
                        taken[i] = last
                self._enqueue_many(ticket, part, nbytes, routed_by)
                start = end
        except asyncio.CancelledError:
            ticket.not_buffered(start, DeliveryError("not buffered: send_many was cancelled"))
            raise
        except ShardlineError as exc:  # the producer failed or closed while the batch waited
            if not start:
                raise  # nothing was taken: the caller gets the error, as from a whole batch
            ticket.not_buffered(start, exc)

    # --- validation and routing (hot path) --------------------------------------------------

    def _prepare(
        self,
        key_source: Any,
        payload: Any,
        partition_key: str | None,
        explicit_hash_key: int | None,
        event_id: str | None = None,
    ) -> tuple[str, int | None, bytes, int]:
        """Validate one record; return (partition key, explicit hash key, data, size).

        ``size`` (data bytes + key characters) is what the buffer caps count.
        """
        if type(payload) is not bytes:
            if self._serializer is not None and not isinstance(payload, bytes | bytearray | memoryview):
                payload = self._serialize(payload)
            else:
                payload = validate_data(payload)
        made_by_strategy = False
        if partition_key is None:
            made_by_strategy = True
            if self._key_strategy is None:
                raise InvalidPartitionKeyError("no partition key given and the producer has no key strategy")
            key = resolve_key(self._key_strategy, key_source)
            partition_key = key.partition_key
            if explicit_hash_key is None:
                explicit_hash_key = key.explicit_hash_key
        if type(partition_key) is not str or not 0 < len(partition_key) <= PARTITION_KEY_MAX_CHARS:
            if made_by_strategy:  # the record's own field was fine: say which strategy made this
                with _naming_the_strategy(self._key_strategy):
                    validate_partition_key(partition_key)
            validate_partition_key(partition_key)
        if explicit_hash_key is not None:
            # Routed by its hash key, this key is first encoded by the sender (the aggregate's
            # key table, the request body): checked here, where a bad one fails this record.
            validate_partition_key(partition_key)
            explicit_hash_key = validate_explicit_hash_key(explicit_hash_key)
        size = len(payload) + len(partition_key)
        if size > self._fast_key_limit:
            validate_record_size(partition_key, payload, self._max_record_bytes)
        if event_id is not None:
            self._check_event_id(partition_key, payload, explicit_hash_key, event_id, size)
        return partition_key, explicit_hash_key, payload, size

    def _check_event_id(
        self, partition_key: str, payload: bytes, explicit_hash_key: int | None, event_id: object, size: int
    ) -> None:
        """An event id must be a non-empty str, and its one-record aggregate must fit the stream."""
        if type(event_id) is not str or not event_id:
            raise ValidationError("event id must be a non-empty str")
        require_text(event_id, "event id")
        # The envelope (magic, MD5, key table, framing, tag) is far below this bound; the
        # exact size is computed only for records near the stream's limit.  The key travels
        # twice (the aggregate's key table and the entry's partition key), each time up to 4
        # UTF-8 bytes a character, and ``size`` counts it once in characters: a bound of 4
        # bytes a character in all let 4-byte keys through ~1 KiB over the limit, and Kinesis
        # refuses the whole PutRecords call that carries such an entry.
        bound = size + 7 * len(partition_key) + 4 * len(event_id) + 192
        if bound <= self._max_record_bytes:
            return
        encoded = single_aggregate_size(
            partition_key, payload, explicit_hash_key, event_id, self.config.event_id_key
        )
        entry_size = encoded + len(partition_key.encode("utf-8"))
        if entry_size > self._max_record_bytes:
            raise RecordTooLargeError(
                f"record with its event id tag needs {entry_size} bytes, over the maximum of "
                f"{self._max_record_bytes}"
            )

    def _serialize(self, value: Any) -> bytes:
        assert self._serializer is not None
        return serialize(self._serializer, value)

    def _route_many(
        self, values: Iterable[Any], keys: Sequence[str | None] | None
    ) -> tuple[list[str], list[bytes | None], Extras | None, dict[str, list[int]], int]:
        """Validate and route a batch; nothing is buffered yet.

        Returns the batch as columns (partition keys, data, and the explicit hash key and
        event id of the records that have one, by position), the positions bound for each
        shard in order, and the bytes the buffer caps count.  A bad record raises its typed
        error before anything of the batch is accepted.
        """
        datas, given = batch_columns(values, keys, copy=True)  # our own lists: the caller may reuse theirs
        count = len(datas)
        extras: Extras | None = None
        distinct = self._plain_keys(datas, given) if count else None
        if distinct is not None:
            total = sum(map(len, datas)) + sum(len(key) * n for key, n in distinct.items())
        else:
            extras, total = self._prepare_each(datas, given)
        try:
            groups = self._group(given, extras, distinct)
        except InvalidPartitionKeyError as exc:
            # A key with no UTF-8 form is found here, where its MD5 is taken (checking every
            # key for it before would cost each record): named by position all the same.
            index = next((i for i, key in enumerate(given) if not is_text(key)), None)
            if index is None:
                raise
            raise InvalidPartitionKeyError(f"record {index} of the batch: {exc}") from exc
        return given, datas, extras, groups, total

    def _plain_keys(self, datas: list[Any], keys: list[Any]) -> Counter[str] | None:
        """The common batch, checked at C speed: bytes values with str keys, all small enough.

        Returns how often each distinct key occurs (keys are checked once each, not once
        per record), or ``None`` for anything else (records, objects, missing keys, a
        record near the size limit), which goes through :meth:`_prepare_each`, where the
        offending record is named.
        """
        if set(map(type, datas)) != {bytes}:
            return None
        try:
            distinct = Counter(keys)
        except TypeError:  # an unhashable key: refused by name in _prepare_each
            return None
        if not all(type(key) is str and 0 < len(key) <= PARTITION_KEY_MAX_CHARS for key in distinct):
            return None
        if max(map(len, datas)) + max(map(len, distinct)) > self._fast_key_limit:
            return None
        return distinct

    def _prepare_each(self, datas: list[Any], keys: list[Any]) -> tuple[Extras | None, int]:
        """Validate every record, normalising ``datas`` and ``keys`` in place.

        Returns the explicit hash keys and event ids by position (``None`` when no record
        has one) and the bytes the buffer caps count.
        """
        extras: Extras | None = None
        limit = self._fast_key_limit
        max_key = PARTITION_KEY_MAX_CHARS
        total = 0
        for index, value in enumerate(datas):
            key = keys[index]
            try:
                if type(value) is Record:
                    data = value.data
                    if key is None:
                        key = value.partition_key
                    ehk, event_id = value.explicit_hash_key, value.event_id
                    if (
                        type(data) is bytes
                        and type(key) is str
                        and 0 < len(key) <= max_key
                        and ehk is None
                        and event_id is None
                        and len(data) + len(key) <= limit
                    ):
                        size = len(data) + len(key)
                    else:
                        key, ehk, data, size = self._prepare(value, data, key, ehk, event_id)
                else:
                    event_id = None
                    key, ehk, data, size = self._prepare(value, value, key, None)
            except ValidationError as exc:
                raise type(exc)(f"record {index} of the batch: {exc}") from exc
            datas[index] = data
            keys[index] = key
            total += size
            if ehk is not None or event_id is not None:
                if extras is None:
                    extras = {}
                extras[index] = (ehk, event_id)
        return extras, total

    def _group(
        self, keys: list[str], extras: Extras | None, distinct: Iterable[str] | None = None
    ) -> dict[str, list[int]]:
        """The batch positions bound for each shard, in order (one routing per distinct key)."""
        assert self._map is not None
        shard_for_key = self._map.shard_for_key
        groups: dict[str, list[int]] = {}
        if extras and any(ehk is not None for ehk, _ in extras.values()):
            # Some records route by explicit hash key: route record by record.
            for index, key in enumerate(keys):
                special = extras.get(index)
                shard_id = shard_for_key(key, special[0] if special else None).shard_id
                order = groups.get(shard_id)
                if order is None:
                    order = groups[shard_id] = []
                order.append(index)
            return groups
        adders: dict[str, Callable[[int], None]] = {}  # partition key -> its shard's list.append
        for key in set(keys) if distinct is None else distinct:
            shard_id = shard_for_key(key).shard_id
            order = groups.get(shard_id)
            if order is None:
                order = groups[shard_id] = []
            adders[key] = order.append
        for index, key in enumerate(keys):
            adders[key](index)
        return groups

    def _enqueue_many(
        self, ticket: BatchTicket, groups: dict[str, list[int]], total: int, routed_by: ShardMap | None
    ) -> None:
        """Buffer the records of ``ticket`` that ``groups`` names (each shard's positions, in
        order; all of the batch, or one part of it) and whose bytes are ``total``.

        ``routed_by`` is the shard map ``groups`` was made with: a batch that waited for room
        may find the shards changed (and everything buffered re-planned) since, and is routed
        again rather than queued behind a shard that no longer takes its keys.
        """
        if not groups:
            return
        self._buffer_send_run()  # earlier send() records first: each key keeps its order
        if routed_by is not self._map:
            groups = self._regrouped(ticket, groups)
        acc = self._acc
        assert acc is not None
        now = self._clock()
        deadline = now + self.config.record_ttl
        # the slots being buffered still have their data: only buffered ones are ever released
        keys, datas, extras = ticket.keys, cast("list[bytes]", ticket.datas), ticket.extras
        added = acc.add_records(ticket, keys, datas, groups, now, deadline, extras)
        assert added == total, "buffer accounting out of step"
        count = sum(map(len, groups.values()))
        self._buffered_records += count
        self._epoch_pending[ticket.epoch] = self._epoch_pending.get(ticket.epoch, 0) + count
        self._buffered_bytes += total
        if not self._sender_woken and (not self._timer_armed or acc.has_full_request):
            self._wake_sender()

    def _regrouped(self, ticket: BatchTicket, groups: dict[str, list[int]]) -> dict[str, list[int]]:
        """The positions of ``groups`` routed by the current shard map, each shard's in order
        (the whole batch routed again by :meth:`_group`: a rare path, after a reshard)."""
        wanted = {position for order in groups.values() for position in order}
        regrouped: dict[str, list[int]] = {}
        for shard_id, order in self._group(ticket.keys, ticket.extras).items():
            kept = [position for position in order if position in wanted]
            if kept:
                regrouped[shard_id] = kept
        return regrouped

    def _buffer_send_run(self) -> None:
        """Hand the open run of ``send()`` records to the accumulator (see SendRun).

        Called before anything looks at or adds to the accumulator (the sender's every
        pass, ``send_many``, a shard map change, a wait for room), so records enter it in the
        order they were sent.  The records were counted against the buffer caps by
        ``send()`` already; their linger and time to live run from the run's first record.
        """
        run = self._send_run
        if run is None:
            return
        self._send_run = None
        acc = self._acc
        assert acc is not None
        try:
            added = acc.add_records(
                run,
                run.keys,
                cast("list[bytes]", run.datas),
                run.groups,
                run.started,
                run.started + self._record_ttl,
                run.extras or None,
            )
        except Exception as exc:
            # A defect, as send() validated every record: part of the run may be in open
            # aggregates already, so it cannot be retried.  Its owner is the producer, which
            # fails with it; the run stays reachable so that every record of it fails too.
            self._send_run = run
            if self._failure is None:
                self._fail_producer("buffering send() records failed", exc)
            raise
        assert added == run.nbytes, "buffer accounting out of step"
        self._epoch_pending[run.epoch] = self._epoch_pending.get(run.epoch, 0) + len(run.keys)

    def _wake_sender(self) -> None:
        """Wake the sender to look at the buffer, once until it has looked.

        Its wake-up event stays set until the sender clears it, so sends in a row need set
        it only once: a loop of ``send()`` calls that never yields set it again for every
        record, a Python call each (``asyncio.Event.set``).
        """
        assert self._wakeup is not None
        self._sender_woken = True
        self._wakeup.set()

    async def _wait_for_space(self, records: int, nbytes: int, block: bool | None) -> None:
        """Back-pressure: wait until the buffer has room (or raise when not blocking).

        The one admission path: the buffer caps and, under drain-rate admission, the byte
        limit from the drain rate (both in ``_max_buffered_bytes``); ``send()`` and
        ``send_many()`` inline the same test and come here only when it fails.
        """
        self._require_own_loop()
        if block is None:
            block = self.config.block_when_full
        cfg = self.config
        waited = False
        while self._buffered_records and (
            self._buffered_records + records > cfg.buffer_max_records
            or self._buffered_bytes + nbytes > self._max_buffered_bytes
        ):
            if self._backlog_from is None:  # more to send than admitted: backlogged from now
                self._backlog_from = self._clock()
            # The records that fill the buffer may still be in the open run (the sender
            # takes them from the accumulator only), and a caller wants room: send now.
            self._buffer_send_run()
            self._room_wanted = True
            if not self._sender_woken:
                self._wake_sender()
            if not block:
                self._observer.on_event(events.BUFFER_FULL, 1, stream=self._stream_label)
                raise BufferFullError(
                    f"producer buffer full ({self._buffered_records} records, {self._buffered_bytes} bytes"
                    f"{self._admission_note()})"
                )
            self._require_started()
            if not waited:
                waited = True
                self._observer.on_event(events.SEND_WAITS, 1, stream=self._stream_label)
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._space_waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._space_waiters.remove(waiter)
            if self._accepting is not True:  # failed or closed while waiting: room was made by that
                self._require_started()

    def _admission_note(self) -> str:
        if self._max_buffered_bytes >= self.config.record_buffer_bytes or self._drain is None:
            return ""
        rate = self._drain.rate
        limit = f"; admission limited to {self._max_buffered_bytes} bytes"
        if rate is None:
            return f"{limit} until the drain rate is measured"
        return f"{limit} by a drain rate of {rate:.0f} bytes/s"

    def _note_drain(self, delivered: int) -> None:
        """A request ended having delivered ``delivered`` bytes: update the admission limit.

        Called once per PutRecords request, whatever its outcome (a throttled or failed
        request delivers nothing, and its time still counts).  The time since the previous
        request ended counts towards the drain rate only if the producer was backlogged
        throughout (see :mod:`producers.drain`); whether it still is, is judged here, after
        this request's records were released.  A raised limit wakes waiting senders in the
        one place the buffer caps wake them.
        """
        drain = self._drain
        if drain is None:
            return
        now = self._clock()
        if self._backlog_from is not None:
            drain.add(delivered, now - self._backlog_from)
            limit = drain.limit()
            raised = limit > self._max_buffered_bytes
            if limit != self._max_buffered_bytes:
                self._max_buffered_bytes = limit
                self._observer.on_event(events.ADMISSION_BYTES, float(limit), stream=self._stream_label)
            if raised:
                self._release(0, 0)
        self._backlog_from = now if self._buffered_bytes >= drain.floor else None

    def _release(self, records: int, nbytes: int) -> None:
        self._buffered_records -= records
        self._buffered_bytes -= nbytes
        if self._buffered_records == 0:
            self._epoch_pending.clear()  # nothing of any generation is left
            if self._flush_waiters:
                self._wake_flushes()
        if self._space_waiters:
            for waiter in self._space_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._space_waiters.clear()

    # --- the sender loop --------------------------------------------------------------------

    def _admit(self, now: float, entry: Entry) -> float:
        """0 when ``entry`` may go now (its rate tokens taken), else how long its shard waits.

        A paced shard waits at least one linger (at most half a second), until the next point
        of a grid all shards share: its backlog then leaves in requests of several aggregates
        instead of one request per refill, and the shards paced together leave together.
        """
        limiter = self._limiter
        if limiter is None:
            return 0.0
        return limiter.acquire(entry.shard_id, 1, entry.size, now)

    async def _run(self) -> None:
        acc = self._acc
        wakeup = self._wakeup
        assert acc is not None and wakeup is not None
        cfg = self.config
        linger = cfg.linger
        max_in_flight_bytes = cfg.max_in_flight_bytes
        while True:
            wakeup.clear()
            self._sender_woken = False
            self._buffer_send_run()
            now = self._clock()
            wake = acc.release_waits(now)
            # A caller that wants room (waiting, or refused with block=False) gains nothing
            # from the linger while nothing is in flight: only sending frees room (a small
            # buffer and a long linger otherwise paced send() at one buffer per linger).
            # With requests in flight, their answers will.
            urgent = self._flushing or self._closing or (self._room_wanted and not self._in_flight)
            self._room_wanted = bool(self._space_waiters)
            oldest = acc.oldest_open
            if urgent or acc.has_full_request or (oldest is not None and oldest + linger <= now):
                # A request goes now (full, flushing, or the oldest record has lingered): every
                # open aggregate rides along instead of lingering into a request of its own.
                # Closed one by one as each lingered, the aggregates of a stream with many
                # quiet shards left one per request (stream-bench, 64 shards at 16 records/s
                # each: 2,915 PutRecords calls for 10,000 records, 2,558 of one entry).
                acc.close_open()
            next_due: float | None = None
            while len(self._in_flight) < cfg.max_in_flight and acc.ready_entries:
                # A request goes when it is full, or once its oldest record has lingered (the
                # KPL's RecordMaxBufferedTime): an aggregate closed because it filled waits
                # for company until then, so requests carry many entries, not one each.
                if not (urgent or acc.has_full_request):
                    oldest_ready = acc.oldest_sendable(self._ordered_busy() if cfg.ordered else ())
                    if oldest_ready is None:
                        break
                    if oldest_ready + linger > now:
                        next_due = oldest_ready + linger
                        break
                # One request may always go; more only within the room left in flight.
                room = max_in_flight_bytes - self._in_flight_bytes if self._in_flight else None
                if room is not None and room <= 0:
                    break
                batch, expired, retry_at = acc.take(
                    now,
                    admit=partial(self._admit, now),
                    ordered=cfg.ordered,
                    busy=self._ordered_busy() if cfg.ordered else (),
                    max_bytes=room,
                )
                for entry in expired:
                    self._fail_entry(entry, self._expired_error(entry))
                if retry_at is not None:
                    wake = retry_at if wake is None else min(wake, retry_at)
                if not batch:
                    break
                if cfg.ordered:
                    self._busy.update(entry.shard_id for entry in batch)
                task = asyncio.create_task(self._send(batch))
                self._in_flight[task] = batch
                nbytes = sum(entry.size for entry in batch)
                self._request_bytes[task] = nbytes
                self._in_flight_bytes += nbytes
                task.add_done_callback(self._on_request_done)
            if self._closing and acc.empty and not self._in_flight:
                return
            if now >= self._next_refresh:
                self._next_refresh = now + cfg.shard_refresh_interval
                self._spawn(self._refresh_quietly())
            timeout_at = self._next_refresh
            if wake is not None and len(self._in_flight) < cfg.max_in_flight:
                timeout_at = min(timeout_at, wake)
            if next_due is not None:
                timeout_at = min(timeout_at, next_due)
            oldest = acc.oldest_open
            self._timer_armed = oldest is not None or next_due is not None
            if oldest is not None:
                timeout_at = min(timeout_at, oldest + linger)
            delay = max(timeout_at - self._clock(), 0.0)
            if delay > 0:
                # (never wait_for: a cancelled sender must die, see shardline.events_wait)
                await wait_until_set(wakeup, delay)
            else:
                await asyncio.sleep(0)  # let the requests just started run before looping

    def _ordered_busy(self) -> set[str]:
        """The shards that may not send in ordered mode: each with a request in flight, and
        the shards that took over its keys in a split or merge since (its children, theirs...).

        A record in flight to the parent may yet be retried or re-sent to a child; a later
        record of its key sent to that child meanwhile would be written first.
        """
        busy = self._busy
        shard_map = self._map
        if not busy or shard_map is None:
            return busy
        blocked = set(busy)
        pending = list(busy)
        while pending:
            for child in shard_map.children_of(pending.pop()):
                if child.shard_id not in blocked:
                    blocked.add(child.shard_id)
                    pending.append(child.shard_id)
        return blocked

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._on_background_done)

    # --- supervision: every task has an owner that surfaces its death -----------------------

    def _on_sender_done(self, task: asyncio.Task[None]) -> None:
        if self._failure is not None:
            return
        if task.cancelled():
            if not self._closed and not self._closing:
                self._fail_producer("the sender task was cancelled", asyncio.CancelledError())
            return
        error = task.exception()
        if error is not None:
            self._fail_producer("the sender task died", error)
        elif not self._closing:
            self._fail_producer("the sender task ended early", RuntimeError("sender returned"))

    def _on_request_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            # Only the producer cancels its requests, once their records have failed (close
            # after its timeout, a failure); any other cancellation would leave them unresolved.
            error: BaseException | None = None if self._closing else asyncio.CancelledError()
        else:
            error = task.exception()
        if error is not None and self._failure is None:
            # Fail the producer while the task's own batch is still listed as in flight.
            self._fail_producer("a PutRecords request task died", error)
        self._in_flight.pop(task, None)
        self._in_flight_bytes -= self._request_bytes.pop(task, 0)
        if self._wakeup is not None:  # the room this request held may start the next one
            self._wakeup.set()

    def _on_background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and self._failure is None and (error := task.exception()) is not None:
            self._fail_producer("the shard map refresh task died", error)

    def _fail_producer(self, what: str, cause: BaseException) -> None:
        """Background work died: fail every pending record with the cause, stop accepting.

        Runs on the event loop (done callbacks), at most once; flush() and close() raise the
        error from then on, and the sender and requests still running are cancelled.
        """
        failure = BackgroundTaskError(f"stream {self._stream_label}: {what} ({type(cause).__name__})")
        failure.__cause__ = cause
        self._failure = failure
        self._accepting = False
        pending = self._buffered_records
        if pending or not isinstance(cause, asyncio.CancelledError):
            _log.error(
                "stream %s: %s; failing %d pending records", self._stream_label, what, pending, exc_info=cause
            )
        self._abandon(failure)
        for task in [self._sender, *self._in_flight, *self._background]:
            if task is not None and not task.done():
                task.cancel()

    def _abandon(self, error: ShardlineError) -> None:
        """Fail every record not yet resolved (buffered or in a request) and empty the buffer."""
        run, self._send_run = self._send_run, None
        if run is not None:
            run.abort(error)
        entries = self._acc.drain_all() if self._acc is not None else []
        for batch in self._in_flight.values():
            entries.extend(batch)
        owners: dict[int, Any] = {}
        for entry in entries:
            for owner in entry.owners:
                owners[id(owner)] = owner
        for owner in owners.values():
            owner.abort(error)
        if entries:
            failed = sum(entry.count for entry in entries)
            self._observer.on_event(events.RECORDS_FAILED, failed, stream=self._stream_label)
        self._buffered_records = self._buffered_bytes = self._in_flight_bytes = 0
        self._request_bytes.clear()
        self._release(0, 0)

    def _expired_error(self, entry: Entry) -> DeliveryError:
        error = DeliveryError(
            f"record not delivered within its time to live of {self.config.record_ttl}s",
            attempts=entry.attempts,
        )
        error.__cause__ = entry.last_error
        return error

    async def _send(self, batch: list[Entry]) -> None:
        """One PutRecords call; acknowledges, retries or fails each entry of ``batch``."""
        delivered = 0
        # the shards this request holds busy (ordered mode): a retried entry may be re-planned
        # onto another shard before the request lets go of them
        held = [entry.shard_id for entry in batch] if self.config.ordered else []
        try:
            try:
                with map_aws_errors("kinesis"):
                    response = await self._put_records(batch)
            except ShardlineError as error:
                # Anything else is a programming error: it ends this task, whose owner
                # (_on_request_done) fails every pending record with it.
                code = getattr(error, "code", type(error).__name__)
                self._observer.on_event(events.REQUEST_ERRORS, 1, stream=self._stream_label, code=code)
                if error.retriable:
                    if isinstance(error, ThrottledError):
                        self._observer.on_event(events.THROTTLES, len(batch), stream=self._stream_label)
                    self._retry(batch, error)
                else:
                    for entry in batch:
                        self._fail_entry(entry, error)
                return
            delivered = await self._handle_response(batch, response)
        finally:
            self._busy.difference_update(held)
            self._note_drain(delivered)
            assert self._wakeup is not None
            self._wakeup.set()

    async def _put_records(self, batch: list[Entry]) -> Any:
        """The PutRecords call of ``batch``, bounded by its records' time to live.

        A call still unanswered ``record_ttl`` seconds after it started, when every record in
        it has outlived its time to live, is given up as a call without an answer (the retry
        path then fails its records as expired), so ``flush()`` and ``close()`` end.
        """
        records = [entry.request_entry() for entry in batch]
        call = self._client.put_records(Records=records, **self._stream_param)
        return await self._answered_within_ttl(call, "PutRecords")

    async def _answered_within_ttl(self, call: Awaitable[_T], name: str) -> _T:
        """``call``'s answer, or :class:`TransientServiceError` once ``record_ttl`` has passed.

        The client's own timeouts may be long or absent (an injected client), and every call
        the producer makes is waited for by records: a PutRecords request, and the ListShards
        calls of a shard-map refresh, which records written to an unexpected shard wait for
        (unbounded, one that never answered held those records, their request's place in
        flight and the refresh lock for good, so ``flush()`` and ``close()`` never ended).  A
        ``CancelledError`` that nobody sent to the calling task (an HTTP library can surface
        its own timeouts so) is a call without an answer too, not the end of that task.
        """
        try:
            async with asyncio.timeout(self._record_ttl) as bound:
                return await call
        except TimeoutError:
            if bound.expired():
                raise TransientServiceError(f"no answer to {name} within the records' time to live") from None
            raise
        except asyncio.CancelledError:
            if cancel_requested():
                raise  # the producer stops this task (close, failure)
            raise TransientServiceError(f"the {name} call was cancelled inside the client") from None

    async def _handle_response(self, batch: list[Entry], response: Any) -> int:
        """Acknowledge, retry or fail each entry; return the user bytes acknowledged.

        The response is not trusted to be a PutRecords answer (botocore parses a 200 HTML
        page or an empty object into a response without records): every entry it does not
        answer is retried as not written, and so is one whose result is neither an error
        code nor a shard and sequence number.
        """
        results = response.get("Records") if isinstance(response, dict) else None
        if type(results) is not list:
            results = []
        now = self._clock()
        failed: list[Entry] = []
        misplaced: list[tuple[Entry, str, str]] = []
        throttles = 0
        records = 0
        nbytes = 0
        per_shard: dict[str, int] = {}
        observer = self._observer
        stream = self._stream_label
        entry_latency, shard_records = self._reports_entry_latency, self._reports_shard_records
        for entry, result in zip(batch, results, strict=False):
            code = result.get("ErrorCode") if type(result) is dict else 0
            if code is None:
                shard_id = result.get("ShardId")
                sequence_number = result.get("SequenceNumber")
                if type(shard_id) is str and type(sequence_number) is str:
                    if shard_id != entry.shard_id and entry.aggregated:
                        misplaced.append((entry, shard_id, sequence_number))
                        continue
                    self._ack_entry(entry, shard_id, sequence_number, now)
                    count = entry.count
                    records += count
                    nbytes += entry.user_bytes
                    if shard_records:
                        per_shard[shard_id] = per_shard.get(shard_id, 0) + count
                    if entry_latency:
                        observer.on_event(events.SEND_TO_ACK_LATENCY, now - entry.created, stream=stream)
                    if shard_id != entry.shard_id:
                        self._next_refresh = now
                    continue
            elif type(code) is str:
                error = from_error_code(code, result.get("ErrorMessage", ""))
                if isinstance(error, ThrottledError):
                    throttles += 1
                if error.retriable:
                    entry.last_error = error
                    failed.append(entry)
                else:
                    self._fail_entry(entry, error)
                continue
            # neither a written entry nor an error code (0: not even an object)
            entry.last_error = TransientServiceError("malformed result in PutRecords response")
            failed.append(entry)
        if len(results) < len(batch):  # a malformed answer: treat the rest as not written
            for entry in batch[len(results) :]:
                entry.last_error = TransientServiceError("entry missing from PutRecords response")
                failed.append(entry)
        observer.on_event(events.BATCHES, 1, stream=stream)
        observer.on_event(events.KINESIS_ENTRIES, len(batch) - len(failed), stream=stream)
        observer.on_event(events.RECORDS_SENT, records, stream=stream)
        observer.on_event(events.BYTES_SENT, nbytes, stream=stream)
        if len(batch) > len(failed):
            observer.on_event(
                events.AGGREGATION_RATIO, records / max(len(batch) - len(failed), 1), stream=stream
            )
        for shard_id, count in per_shard.items():
            observer.on_event(events.SHARD_RECORDS, count, stream=stream, shard=shard_id)
        if throttles:
            observer.on_event(events.THROTTLES, throttles, stream=stream)
        if failed:
            self._retry(failed, None)  # each keeps the error of its own result
        if misplaced:
            await self._resolve_misplaced(misplaced)
        return nbytes

    async def _resolve_misplaced(self, misplaced: list[tuple[Entry, str, str]]) -> None:
        """Aggregates that landed on a shard other than planned: the shards changed.

        Records whose hash key lies in the receiving shard's range are acknowledged; the
        others are routed again with the refreshed map and sent once more (a duplicate on
        the wrong shard rather than a loss; consumers that filter sub-records by the shard's
        hash range, like the KCL, drop the stray copy).
        """
        try:
            await self.refresh_shard_map()
        except ShardlineError as exc:
            # The aggregates were written, but which of their records the receiving shards
            # own cannot be told without the new map: report them failed (the caller may send
            # again: a duplicate, never a silent loss to a consumer filtering by hash range).
            for entry, shard_id, _ in misplaced:
                error = DeliveryError(
                    f"written to unexpected shard {shard_id}; the shard map could not be refreshed",
                    attempts=entry.attempts + 1,
                    retriable=True,
                )
                error.__cause__ = exc
                self._fail_entry(entry, error)
            return
        shard_map = self.shard_map
        acc = self._acc
        assert acc is not None
        now = self._clock()
        # Records re-sent go ahead of everything buffered: they were sent before any of it
        # (the refresh above has just re-planned the rest), so each key keeps its order.
        # After a split or merge (the receiving shard is listed) that costs them no attempt.
        # An answer naming a shard the listing lacks makes them retries of their entry (its
        # attempts, the retry engine's back-off and limit): an endpoint that keeps answering
        # so gets a bounded number of copies, not one per round trip until the time to live.
        ahead: list[Entry] = []
        unlisted: list[Entry] = []
        for entry, shard_id, sequence_number in misplaced:
            shard = shard_map.get(shard_id)
            resend: dict[str, tuple[list[Member], list[bytes]]] = {}
            # The data from the entry itself: a send() record's owner let go of its copy.
            for sub, (member, data) in enumerate(zip(entry.members(), entry.member_datas(), strict=True)):
                owner, slot = member
                if shard is not None and shard.contains(member_hash_key(member)):
                    owner.ack_run((slot,), sub, shard_id, sequence_number, now)
                    self._settle_epoch(owner.epoch, 1)
                    self._release(1, len(data) + len(owner.fields(slot)[0]))
                    continue
                key, ehk, _, _ = owner.fields(slot)
                members, datas = resend.setdefault(shard_map.shard_for_key(key, ehk).shard_id, ([], []))
                members.append(member)
                datas.append(data)
            for target, (members, datas) in resend.items():
                for rebuilt in acc.build_entries(target, members, entry.created, entry.deadline, datas):
                    rebuilt.attempts = entry.attempts
                    (ahead if shard is not None else unlisted).append(rebuilt)
            rerouted = sum(len(members) for members, _ in resend.values())
            self._observer.on_event(events.RECORDS_REROUTED, rerouted, stream=self._stream_label)
        if unlisted:
            self._retry(unlisted, TransientServiceError("written to a shard the listing lacks; sent again"))
        acc.requeue(ahead)
        assert self._wakeup is not None
        self._wakeup.set()

    def _retry(self, entries: list[Entry], error: BaseException | None) -> None:
        """Count an attempt of each entry and queue it again after its back-off, or fail it.

        ``error`` is what failed the attempt of every one of them (a whole call); ``None``
        when each entry's ``last_error`` already says what failed it (a partial failure's
        codes differ per entry: one error for all of them named the first entry's code as
        the cause of every record's final failure).
        """
        now = self._clock()
        retry: list[Entry] = []
        for entry in entries:
            entry.attempts += 1
            if error is not None:
                entry.last_error = error
            if entry.attempts >= self.config.max_attempts:
                failure = DeliveryError(
                    f"record not delivered after {entry.attempts} attempts", attempts=entry.attempts
                )
                failure.__cause__ = entry.last_error
                self._fail_entry(entry, failure)
                continue
            entry.not_before = now + self._policy.backoff(entry.attempts)
            if entry.not_before >= entry.deadline:
                self._fail_entry(entry, self._expired_error(entry))
                continue
            retry.append(entry)
        if retry:
            self._observer.on_event(events.RETRIES, len(retry), stream=self._stream_label)
            assert self._acc is not None
            self._acc.requeue(retry, self._map)  # re-planned if their shard closed meanwhile

    def _ack_entry(self, entry: Entry, shard_id: str, sequence_number: str, acked_at: float) -> None:
        """One ack per owner run: a batch ticket records the run (with ``acked_at``, its
        response's arrival), a run of ``send()`` records resolves their tickets."""
        sub: int | None = 0 if entry.aggregated else None
        for owner, slots in zip(entry.owners, entry.slots, strict=True):
            owner.ack_run(slots, sub, shard_id, sequence_number, acked_at)
            self._settle_epoch(owner.epoch, len(slots))
            if sub is not None:
                sub += len(slots)
        self._release(entry.count, entry.user_bytes)

    def _fail_entry(self, entry: Entry, error: ShardlineError) -> None:
        self._observer.on_event(events.RECORDS_FAILED, entry.count, stream=self._stream_label)
        for owner, slots in zip(entry.owners, entry.slots, strict=True):
            for slot in slots:
                owner.fail(slot, error)
            self._settle_epoch(owner.epoch, len(slots))
        self._release(entry.count, entry.user_bytes)

    def _settle_epoch(self, epoch: int, records: int) -> None:
        """``records`` of flush generation ``epoch`` have their outcome: wake the flushes
        waiting for nothing more once the generation has none left."""
        pending = self._epoch_pending
        left = pending.get(epoch)
        if left is None:  # already counted out (the producer gave up on everything)
            return
        if left > records:
            pending[epoch] = left - records
            return
        del pending[epoch]
        if self._flush_waiters:
            self._wake_flushes()

    def _wake_flushes(self) -> None:
        """Resolve each flush whose generation and every earlier one has nothing pending."""
        oldest = min(self._epoch_pending, default=None)
        for target, waiter in self._flush_waiters:
            if (oldest is None or target < oldest) and not waiter.done():
                waiter.set_result(None)

    # --- shard map refresh ------------------------------------------------------------------

    async def refresh_shard_map(self) -> bool:
        """List the shards again; if they changed, re-plan everything not yet sent.

        Returns True when the map differs from the one in use when the call began (a
        refresh running concurrently may have applied the change).  Called periodically,
        on unexpected shard ids in PutRecords results, and available to callers that just
        resharded the stream.

        Calls made while a refresh runs share the next one, which begins after each of them
        did: its outcome, the new map or its error, is theirs.  Each used to list the shards
        on its own, one after the other, so the requests whose aggregates landed on a new shard
        (up to ``max_in_flight``) waited for as many ListShards calls in a row: with ListShards
        throttled or unanswered, ``max_in_flight`` times its failure or ``record_ttl``, with
        every place in flight held and nothing else sent, so records never sent expired.
        """
        assert self._refresh_lock is not None
        seen = self._map  # what the caller knew: a concurrent refresh may apply the change first
        begun_before = self._refreshes_begun
        async with self._refresh_lock:
            number, error = self._last_refresh
            if number > begun_before:  # one began after this call and has ended: share it
                if error is not None:
                    raise error.with_traceback(None)  # its own traceback, not one grown per raise
                return self._changed_since(seen)
            self._refreshes_begun = number = self._refreshes_begun + 1
            try:
                changed = await self._apply_listing()
            except Exception as exc:  # shared with the calls waiting for the lock, then raised
                self._last_refresh = (number, exc)
                raise
            self._last_refresh = (number, None)
            return changed or self._changed_since(seen)

    def _changed_since(self, seen: ShardMap | None) -> bool:
        """Whether the open shards differ from those of ``seen``."""
        assert self._map is not None
        seen_ids = {s.shard_id for s in seen.open_shards} if seen is not None else set()
        return seen_ids != {s.shard_id for s in self._map.open_shards}

    async def _apply_listing(self) -> bool:
        """List the shards and, if the open ones changed, put the new map in use: re-plan the
        buffer onto it, give the rate limiter's budget of closed shards up.  Returns whether
        they changed.  Runs under the refresh lock."""
        old = self._map
        new = await self._load_shard_map()
        old_ids = {s.shard_id for s in old.open_shards} if old is not None else set()
        new_ids = {s.shard_id for s in new.open_shards}
        if old_ids == new_ids:
            self._bind_key_ranges()  # again, if the strategy refused this map's ranges before
            return False
        if self._limiter is not None:
            for gone in old_ids - new_ids:
                self._limiter.forget(gone)
        assert self._acc is not None
        self._buffer_send_run()  # routed by the old map: re-planned with the rest
        split = self._acc.replan(new, self._clock())
        self._observer.on_event(events.SHARD_MAP_CHANGES, 1, stream=self._stream_label, split_entries=split)
        _log.info(
            "stream %s: shard map changed (%d open shards, was %d)",
            self._stream_label,
            len(new_ids),
            len(old_ids),
        )
        assert self._wakeup is not None
        self._wakeup.set()
        self._bind_key_ranges()
        return True

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh_shard_map()
        except ShardlineError as exc:
            _log.warning("stream %s: shard map refresh failed: %s", self._stream_label, type(exc).__name__)

    def __repr__(self) -> str:
        return (
            f"KinesisProducer(stream={self._stream_label!r}, buffered={self._buffered_records}, "
            f"in_flight={len(self._in_flight)})"
        )
