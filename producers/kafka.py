"""Asynchronous Kafka / Amazon MSK producer on confluent-kafka.

The same shape as the Kinesis producer: ``await send(value)`` validates, queues and returns a
future that resolves to a :class:`~shardline.records.KafkaAck` once the broker acknowledged
the message (or fails with an error from :mod:`shardline.errors`).  librdkafka does the
batching, compression, retries and idempotence; this module adds validation before anything
is queued, back-pressure when the local queue is full, and the bridge from librdkafka's
delivery reports to asyncio futures (:mod:`producers._kafka_delivery`).

A sync facade is not provided here: code that is not async can use confluent-kafka's own
``Producer`` with :meth:`KafkaClientConfig.to_confluent` and the same settings.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from operator import methodcaller
from types import TracebackType
from typing import Any, Self

from confluent_kafka import KafkaError, KafkaException, Producer

from producers._kafka_batch import DeliveryBatch, KafkaBatchAcks
from producers._kafka_config import KafkaProducerConfig
from producers._kafka_delivery import DeliveryFuture, DeliveryPump, Report
from producers.keys import Key, KeyStrategy
from producers.keys import resolve as resolve_key
from shardline import metrics_events as events
from shardline.errormap import from_kafka_error, map_kafka_errors
from shardline.errors import (
    BackgroundTaskError,
    ClosedError,
    DeliveryError,
    InvalidPartitionKeyError,
    MessageTooLargeError,
    ShardlineError,
    ValidationError,
)
from shardline.eventid import EVENT_ID_MAC_HEADER
from shardline.kafka_config import EVENT_ID_HEADER, KafkaClientConfig
from shardline.limits import INT64_MAX
from shardline.lograte import RepeatedWarning
from shardline.metrics import MetricsObserver, guard_observer
from shardline.records import KafkaAck, Record
from shardline.serde import serialize
from shardline.validation import batch_columns, is_text, require_text, validate_data, validate_topic_name

__all__ = ["KafkaBatchAcks", "KafkaProducer", "KafkaProducerConfig", "Serializer"]

log = logging.getLogger(__name__)

Serializer = Callable[[Any], bytes]
"""Turns a value given to ``send()`` into message bytes."""

Headers = Mapping[str, bytes] | list[tuple[str, bytes]]

_INLINE_POLL_MASK = 31
"""While the loop is busy sending, it serves delivery reports itself every 32 sends."""

_BATCH_POLL_MASK = 255
"""Inside ``send_many`` the loop serves delivery reports every 256 messages (measured best)."""


_SPARE_BATCHES = 4
"""Completed ``send_many`` batches kept for reuse (their callables are reused too)."""

_SPARE_BATCH_CAPACITY = 100_000
"""Larger batches are not kept: their per-message callables would hold memory for good."""


def _not_started(*_args: Any) -> Any:
    raise RuntimeError("producer not started")


_isascii = methodcaller("isascii")


def _all_text(keys: list[Any], only_str: bool) -> bool:
    """Whether every str key of a batch (str and bytes keys only) has a UTF-8 form.

    ASCII keys, the usual ones, are checked at C speed: str keys joined and checked at once
    (9 ns a key for 10,000 keys of 13 characters, against 23 for ``str.isascii`` on each);
    others once per distinct key.
    """
    if "".join(keys).isascii() if only_str else all(map(_isascii, keys)):
        return True
    return all(is_text(key) for key in {key for key in keys if type(key) is str})


def _headers_size(headers: list[tuple[str, bytes | None]]) -> int:
    """What a message's headers add to its size: their names (UTF-8) and values.

    Counted against ``max_message_bytes`` with the value and key: librdkafka counts them too,
    and refused such a message in ``produce()``, in the middle of a ``send_many`` batch.
    """
    size = 0
    for name, value in headers:
        size += (len(name) if name.isascii() else len(name.encode())) + (len(value) if value else 0)
    return size


def _too_large(size: int, limit: int) -> MessageTooLargeError:
    return MessageTooLargeError(
        f"message of {size} bytes (value, key and headers) exceeds max_message_bytes={limit}"
    )


def _refused_by_produce(exc: Exception) -> ValidationError:
    """``produce()`` refused a message validation let through, otherwise than with a
    ``KafkaException`` or ``BufferError``: named by the exception's type (its message may
    quote the message's contents), with the exception as the cause."""
    return ValidationError(f"produce() refused the message ({type(exc).__name__})")


class KafkaProducer:
    """Send messages to one topic; each ``send`` returns a delivery future.

    ``producer`` injects a ready confluent-kafka ``Producer`` (or a compatible double);
    otherwise one is built from ``client`` and ``config``.  Delivery callbacks are attached
    per message, so an injected producer needs no ``on_delivery`` of its own.
    """

    def __init__(
        self,
        topic: str,
        client: KafkaClientConfig | None = None,
        *,
        config: KafkaProducerConfig | None = None,
        serializer: Serializer | None = None,
        key_strategy: KeyStrategy | None = None,
        observer: MetricsObserver | None = None,
        producer: Any | None = None,
    ) -> None:
        validate_topic_name(topic)  # librdkafka takes any name; the broker refuses it much later
        if producer is None and client is None:
            raise ValidationError("give a KafkaClientConfig or a ready confluent-kafka producer")
        self.topic = topic
        self.config = config if config is not None else KafkaProducerConfig()
        self._serializer = serializer
        self._key_strategy = key_strategy
        self._observer: MetricsObserver = guard_observer(observer)
        self._fatal: ShardlineError | None = None
        self._failure: BackgroundTaskError | None = None
        self._callback_error: ShardlineError | None = None
        self._callback_errors = 0
        self._last_client_error: ShardlineError | None = None
        self._client_errors = RepeatedWarning(log)
        self._owns_producer = producer is None
        if producer is None:
            assert client is not None
            conf = {**client.to_confluent(), **self.config.to_confluent(), "error_cb": self._on_client_error}
            producer = client.new_client(
                Producer, conf, on_token_failure=self._on_callback_error, on_token=self._on_token
            )
        self._producer = producer
        self._produce: Callable[..., None] = producer.produce
        self._poll: Callable[[float], int] = producer.poll
        self._max_bytes = self.config.max_message_bytes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pump: DeliveryPump | None = None
        self._create_future: Callable[[], DeliveryFuture] = _not_started
        self._ready = False
        self._waiting_for_space = False
        self._space_waiters = 0
        self._in_flight = 0
        self._open_batches: set[DeliveryBatch] = set()
        self._spare_batches: list[DeliveryBatch] = []
        self._sends = 0
        self._space = asyncio.Event()
        self._space_lock = asyncio.Lock()
        self._drained = asyncio.Event()
        self._drained.set()
        self._closed = False
        self._purged = False
        """``close(timeout)`` ran out and purged: sends waiting for room fail, none is queued."""
        self._client_closed = False
        """The client this producer made was closed: it may not be polled any more."""

    def __repr__(self) -> str:
        return f"KafkaProducer(topic={self.topic!r}, in_flight={self._in_flight})"

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the delivery thread (``send`` does it on first use)."""
        self._ensure_started()

    def _check_ready(self) -> DeliveryPump:
        """The slow path of ``send``: closed, failed for good, or not started yet."""
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise ClosedError("producer is closed")
        if self._fatal is not None:
            raise self._fatal
        self._ensure_started()
        assert self._pump is not None
        self._ready = True
        return self._pump

    def _require_own_loop(self) -> None:
        """Raise ``RuntimeError`` when called from another event loop than the one that started
        the producer (another thread's, usually), as asyncio's own primitives do.

        Its futures, events and delivery thread serve that loop: a call from elsewhere raced
        its bookkeeping and left the caller a future it could not await.  A loop lookup costs
        a ``getpid()`` system call in CPython 3.11 (~0.2 us), so ``send()`` checks only when
        it marks the loop busy (once per loop iteration) or waits for room.
        """
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError(
                f"{self!r} belongs to the event loop that started it and was called from another;"
                " from another thread use asyncio.run_coroutine_threadsafe onto that loop"
            )

    def _ensure_started(self) -> None:
        if self._pump is None:
            self._loop = asyncio.get_running_loop()
            self._pump = DeliveryPump(
                self._producer.poll,
                self._loop,
                self._resolve_one,
                self._on_round,
                timeout=self.config.poll_timeout_s,
                on_error=self._on_callback_error,
                on_death=self._on_pump_death,
                on_settled=self._settled_inline,
                topic=self.topic,
                pending=getattr(self._producer, "__len__", None),
            )
            self._create_future = self._pump.new_future
            self._pump.start()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def in_flight(self) -> int:
        """Messages queued or sent whose delivery has not been reported yet."""
        return self._in_flight - sum(batch.reported for batch in list(self._open_batches))

    # --- sending -----------------------------------------------------------------------------

    async def send(
        self,
        value: Any,
        key: str | bytes | None = None,
        *,
        partition: int | None = None,
        headers: Headers | None = None,
        timestamp: datetime | int | None = None,
    ) -> asyncio.Future[KafkaAck]:
        """Validate and queue one message; return once queued, with its delivery future.

        ``value`` is bytes, a :class:`~shardline.records.Record` (its key, headers, timestamp
        and event id are used), or any object when a serializer was given.  Without ``key``
        the key strategy (if any) picks one from ``value``; the key then picks the partition
        as the Java client would (``KafkaProducerConfig.partitioner``), so equal keys share a
        partition and keep their order.

        Bad input raises a :class:`~shardline.errors.ValidationError` and nothing is queued.
        When librdkafka's queue is full this waits for deliveries to make room.
        """
        pump = self._pump
        if not self._ready:
            pump = self._check_ready()
        assert pump is not None
        if not pump.busy:
            self._require_own_loop()  # once per loop iteration: see _require_own_loop
            pump.mark_busy()
        self._sends += 1
        if not self._sends & _INLINE_POLL_MASK:
            pump.poll_inline()
        if type(value) is Record:
            data, key, headers, timestamp = self._from_record(value, key, headers, timestamp)
        else:
            if key is None and self._key_strategy is not None:
                key = self._strategy_key(value)
            data = value if type(value) is bytes else self._to_bytes(value)
        size = len(data)
        if key is not None:
            if type(key) is str:
                if not key.isascii():  # librdkafka encodes it: a lone surrogate cannot be
                    require_text(key, "key", InvalidPartitionKeyError)
                size += len(key)
            elif isinstance(key, bytes):
                size += len(key)
            else:
                raise InvalidPartitionKeyError(f"key must be str or bytes, not {type(key).__name__}")
        if partition is None and headers is None and timestamp is None:
            kwargs: dict[str, Any] | None = None
        else:
            kwargs = self._extra_kwargs(partition, headers, timestamp)
            if "headers" in kwargs:
                size += _headers_size(kwargs["headers"])
        if size > self._max_bytes:
            raise _too_large(size, self._max_bytes)
        # The future is its own on_delivery callback (see producers._kafka_delivery).
        future: asyncio.Future[KafkaAck] = self._create_future()
        if not self._waiting_for_space:
            try:
                if kwargs is None:
                    self._produce(self.topic, data, key, -1, future)
                else:
                    self._produce(self.topic, data, key, on_delivery=future, **kwargs)
            except BufferError:
                pass
            except KafkaException:
                with map_kafka_errors():  # the error path only: no cost per message
                    raise
            except Exception as exc:
                raise _refused_by_produce(exc) from exc
            else:
                self._in_flight += 1
                return future
        await self._produce_when_space(data, key, future, kwargs or {})
        return future

    async def send_and_wait(
        self,
        value: Any,
        key: str | bytes | None = None,
        *,
        partition: int | None = None,
        headers: Headers | None = None,
        timestamp: datetime | int | None = None,
    ) -> KafkaAck:
        """``send`` and wait for the broker's acknowledgement."""
        future = await self.send(value, key, partition=partition, headers=headers, timestamp=timestamp)
        return await future

    async def send_many(
        self,
        values: Iterable[Any],
        keys: Sequence[str | bytes | None] | None = None,
    ) -> asyncio.Future[KafkaBatchAcks]:
        """Validate and queue many messages; return once queued, with ONE delivery future.

        The cheapest way to produce: no future, callback closure or ack object per message
        (see :mod:`producers._kafka_batch`).  ``values`` are what ``send`` accepts (bytes,
        :class:`~shardline.records.Record`, or objects for the serializer); ``keys``, when
        given, holds one key (or ``None``) per value, otherwise the record's key or the key
        strategy is used.  Every message is validated before any is queued, so a bad one
        raises its typed error (naming its index) and nothing of the batch is sent.

        The future resolves, when every message was delivered or failed, to
        :class:`~producers._kafka_batch.KafkaBatchAcks`: acks in input order, failures in
        ``.failed``.  A full local queue makes this wait (back-pressure) for room; messages
        queued before a fatal producer error still report, the rest fail with that error.
        """
        pump = self._pump
        if not self._ready:
            pump = self._check_ready()
        assert pump is not None
        self._require_own_loop()
        datas, out_keys, extras = self._prepare_many(values, keys)
        count = len(datas)
        loop = self._loop
        assert loop is not None
        future: asyncio.Future[KafkaBatchAcks] = loop.create_future()
        spare = self._spare_batches
        if spare:
            batch = spare.pop()
            batch.reset(future, count)
        else:
            batch = DeliveryBatch(
                future,
                count,
                on_complete=self._batch_complete,
                hand_over=pump.hand_over,
                on_error=self._note_fatal,
                loop_thread=pump.loop_thread,
            )
        self._open_batches.add(batch)
        self._drained.clear()
        index = 0
        if not self._waiting_for_space:
            index, error = self._produce_run(batch, 0, datas, out_keys, extras)
            if error is not None:
                self._abandon(batch, index, error)
                return future
        if index < count:
            # Waiting for room: the caller may change its lists meanwhile, so hold copies.
            await self._queue_rest_of_batch(batch, index, list(datas), list(out_keys), extras)
        batch.finish_queueing()
        return future

    async def flush(self) -> None:
        """Wait until every message sent so far was delivered or failed (futures resolved).

        librdkafka fails undeliverable messages after ``delivery_timeout_ms``, so this ends.
        If the delivery thread died, raises the :class:`~shardline.errors.BackgroundTaskError`
        naming the cause (pending messages were purged and fail with it).
        """
        if self._pump is not None:
            self._require_own_loop()
        while self._unsettled and self._pump is not None:
            if self._failure is not None:
                raise self._failure
            self._drained.clear()
            await self._drained.wait()
        if self._failure is not None:
            raise self._failure

    @property
    def _unsettled(self) -> bool:
        """Messages queued and not yet reported, or (once closing) sends still waiting for room.

        A send waiting for room when ``close()`` begins may still queue its message, woken
        by the report that lets ``close()``'s flush end: that flush must wait for it too, or
        the delivery thread stopped with the message queued and its future never resolved.
        """
        return bool(self._in_flight or self._open_batches or (self._closed and self._space_waiters))

    async def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the delivery thread.  Later ``send`` calls raise ClosedError.

        With ``timeout``, messages still queued after that many seconds are purged: their
        futures fail with DeliveryError, so every message is delivered or reported.
        """
        if self._closed:
            return
        if self._pump is not None:
            self._require_own_loop()
        self._closed = True
        self._ready = False
        if self._pump is None:
            return
        try:
            if timeout is None:
                await self.flush()
            else:
                try:
                    await asyncio.wait_for(self.flush(), timeout)
                except TimeoutError:
                    # Sends still waiting for room must not queue into the room the purge
                    # makes: the flush below would wait for them, a whole delivery timeout
                    # past ``timeout`` (or for good with a broker that never answers).
                    self._purged = True
                    self._producer.purge(in_queue=True, in_flight=True)
                    self._space.set()
                    await self.flush()
        finally:
            self._pump.stop()
            self._space.set()  # sends still waiting for room fail with ClosedError, not queued
            await asyncio.to_thread(self._pump.join)
            if self._owns_producer:
                # Nothing is queued any more; this only releases librdkafka's threads and sockets.
                self._client_closed = True
                await asyncio.to_thread(self._producer.close)

    # --- internals ---------------------------------------------------------------------------

    def _from_record(
        self,
        record: Record,
        key: str | bytes | None,
        headers: Headers | None,
        timestamp: datetime | int | None,
    ) -> tuple[bytes, str | bytes | None, Headers | None, datetime | int | None]:
        data = validate_data(record.data)
        if key is None:
            key = record.partition_key
            if key is None and self._key_strategy is not None:
                key = self._strategy_key(record)
        if headers is None and (record.headers is not None or record.event_id is not None):
            merged = list(record.headers.items()) if record.headers is not None else []
            if record.event_id is not None:
                merged.append((EVENT_ID_HEADER, require_text(record.event_id, "event id").encode()))
                signer = self.config.event_id_key
                if signer is not None:
                    merged.append((EVENT_ID_MAC_HEADER, signer.mac(record.event_id, data).encode()))
            headers = merged
        if timestamp is None:
            timestamp = record.timestamp
        return data, key, headers, timestamp

    def _prepare_many(
        self, values: Iterable[Any], keys: Sequence[str | bytes | None] | None
    ) -> tuple[list[bytes], list[str | bytes | None], dict[int, dict[str, Any]] | None]:
        """Validate a whole batch: (data, keys, extra produce arguments by index)."""
        # The caller's lists are used as they are: the first run of produce() calls reads them
        # before anything can await, and send_many copies what is left before it waits for
        # queue space.  Copies of 10,000-item lists made per call were a third of the garbage
        # collector's time on the batch path (each young collection walks every young list).
        items, given = batch_columns(values, keys, copy=False)
        count = len(items)
        if count and self._all_plain(items, given):
            return items, given, None
        return self._prepare_each(items, given)

    def _all_plain(self, items: list[Any], keys: list[str | bytes | None]) -> bool:
        """The common batch, checked at C speed: bytes values, str/bytes keys, all small enough.

        Anything else (records, objects, missing keys, a message near the size limit) goes
        through :meth:`_prepare_each`, which also names the offending message.
        """
        if set(map(type, items)) != {bytes}:
            return False
        key_types = set(map(type, keys))
        if key_types <= {bytes, str}:
            if str in key_types and not _all_text(keys, len(key_types) == 1):
                return False  # a key librdkafka could not encode: named by _prepare_each
            return max(map(len, items)) + max(map(len, keys)) <= self._max_bytes  # type: ignore[arg-type]
        if key_types == {type(None)} and self._key_strategy is None:
            return max(map(len, items)) <= self._max_bytes
        return False

    def _prepare_each(
        self, items: list[Any], given: list[str | bytes | None]
    ) -> tuple[list[bytes], list[str | bytes | None], dict[int, dict[str, Any]] | None]:
        datas: list[bytes] = []
        out_keys: list[str | bytes | None] = []
        extras: dict[int, dict[str, Any]] | None = None
        max_bytes, strategy = self._max_bytes, self._key_strategy
        add_data, add_key = datas.append, out_keys.append
        for index, value in enumerate(items):
            key = given[index]
            size = 0  # a record's headers, then its value and key
            try:
                if type(value) is bytes:
                    data = value
                    if key is None and strategy is not None:
                        key = self._strategy_key(value)
                elif type(value) is Record:
                    data, key, headers, timestamp = self._from_record(value, key, None, None)
                    if headers is not None or timestamp is not None:
                        if extras is None:
                            extras = {}
                        extras[index] = kwargs = self._extra_kwargs(None, headers, timestamp)
                        if "headers" in kwargs:
                            size = _headers_size(kwargs["headers"])
                else:
                    if key is None and strategy is not None:
                        key = self._strategy_key(value)
                    data = self._to_bytes(value)
                size += len(data)
                if key is not None:
                    if type(key) is str:
                        require_text(key, "key", InvalidPartitionKeyError)
                        size += len(key)
                    elif isinstance(key, bytes):
                        size += len(key)
                    else:
                        raise InvalidPartitionKeyError(f"key must be str or bytes, not {type(key).__name__}")
                if size > max_bytes:
                    raise _too_large(size, max_bytes)
            except ValidationError as exc:
                raise type(exc)(f"message {index} of the batch: {exc}") from exc
            add_data(data)
            add_key(key)
        return datas, out_keys, extras

    def _produce_run(
        self,
        batch: DeliveryBatch,
        start: int,
        datas: list[bytes],
        keys: list[str | bytes | None],
        extras: dict[int, dict[str, Any]] | None,
    ) -> tuple[int, ShardlineError | None]:
        """Queue messages ``start..`` of ``batch`` until all are queued or librdkafka's queue is
        full: (the index of the first message not queued, the error that stopped the run).

        The loop thread serves delivery reports itself every 256 messages (the delivery
        thread steps aside meanwhile), also when a batch resumes after waiting for room.
        """
        pump = self._pump
        assert pump is not None
        if not pump.busy:
            pump.mark_busy()
        produce, topic, poll = self._produce, self.topic, pump.poll_inline
        callbacks = batch.callbacks
        index = start
        error: ShardlineError | None = None
        try:
            if extras is None:
                for index in range(start, len(datas)):
                    produce(topic, datas[index], keys[index], -1, callbacks[index])
                    if not index & _BATCH_POLL_MASK:
                        poll()
            else:
                for index in range(start, len(datas)):
                    self._produce_one(batch, index, datas[index], keys[index], extras)
                    if not index & _BATCH_POLL_MASK:
                        poll()
            index = len(datas)
        except BufferError:
            pass
        except KafkaException as exc:
            error = self._produce_error(exc)
        except Exception as exc:  # noqa: BLE001 - refused otherwise than validation foresaw
            # Messages before it are queued and will report: the run ends here, with its
            # accounting kept, so the batch resolves and flush() and close() end.
            refused = type(exc).__name__
            error = ValidationError(f"message {index} of the batch: produce() refused it ({refused})")
        self._in_flight += index - start
        return index, error

    def _produce_one(
        self,
        batch: DeliveryBatch,
        index: int,
        data: bytes,
        key: str | bytes | None,
        extras: dict[int, dict[str, Any]] | None,
    ) -> None:
        kwargs = extras.get(index) if extras is not None else None
        if kwargs is None:
            self._produce(self.topic, data, key, -1, batch.callback(index))
        else:
            self._produce(self.topic, data, key, on_delivery=batch.callback(index), **kwargs)

    async def _queue_rest_of_batch(
        self,
        batch: DeliveryBatch,
        start: int,
        datas: list[bytes],
        keys: list[str | bytes | None],
        extras: dict[int, dict[str, Any]] | None,
    ) -> None:
        """The queue filled up mid-batch: queue the rest as deliveries make room, in order.

        Like ``_produce_when_space`` it takes the FIFO lock, so sends that arrive meanwhile
        queue behind the batch.  A fatal error or close while waiting fails the messages not
        queued yet (in the batch's acks); a cancelled caller fails them and re-raises.
        """
        index = start
        self._space_waiters += 1
        self._waiting_for_space = True
        try:
            async with self._space_lock:
                while index < len(datas):
                    if self._failure is not None or self._fatal is not None:
                        self._abandon(batch, index, self._failure or self._fatal)  # type: ignore[arg-type]
                        return
                    if self._refusing_sends:
                        self._abandon(batch, index, ClosedError("producer is closed"))
                        return
                    self._space.clear()
                    index, error = self._produce_run(batch, index, datas, keys, extras)
                    if error is not None:
                        self._abandon(batch, index, error)
                        return
                    if index < len(datas):
                        if self.in_flight == 0:  # reported messages of open batches hold no room
                            self._abandon(
                                batch,
                                index,
                                MessageTooLargeError("message does not fit librdkafka's local queue"),
                            )
                            return
                        self._observer.on_event(events.KAFKA_QUEUE_FULL, topic=self.topic)
                        await self._space.wait()
        except asyncio.CancelledError:
            self._abandon(batch, index, DeliveryError("not queued: send_many was cancelled"))
            raise
        finally:
            self._space_left()

    def _abandon(self, batch: DeliveryBatch, index: int, error: ShardlineError) -> None:
        """Messages ``index..`` of ``batch`` will never be queued: they fail with ``error``."""
        batch.not_queued(index, error)
        batch.finish_queueing()

    def _batch_complete(self, batch: DeliveryBatch) -> None:
        """Every message of ``batch`` reported (loop thread): resolve its future once.

        A batch handed over late (its last report raced with ``finish_queueing``) may already
        be reused for the next ``send_many``: it is resolved only when open and complete.
        """
        if batch not in self._open_batches or not batch.complete:
            return
        self._open_batches.discard(batch)
        self._in_flight -= batch.expected
        failed: dict[int, ShardlineError] = {}
        for index, err in batch.errors:
            failed[index] = self._report_failure(err)
        if not batch.future.done():
            batch.future.set_result(batch.acks(self.topic, failed))
        # Indexes from ``expected`` on were never queued; the others failed in delivery.
        delivered = batch.expected - sum(1 for index in failed if index < batch.expected)
        if delivered:
            self._observer.on_event(events.RECORDS_DELIVERED, delivered, topic=self.topic)
        if failed:
            self._observer.on_event(events.RECORDS_FAILED, len(failed), topic=self.topic)
        if len(self._spare_batches) < _SPARE_BATCHES and batch.capacity <= _SPARE_BATCH_CAPACITY:
            self._spare_batches.append(batch)
        if self._waiting_for_space:
            self._space.set()
        if self._in_flight == 0 and not self._open_batches:
            self._drained.set()

    def _strategy_key(self, value: Any) -> str:
        assert self._key_strategy is not None
        resolved: Key = resolve_key(self._key_strategy, value)
        return resolved.partition_key

    def _to_bytes(self, value: Any) -> bytes:
        if type(value) is bytes:
            return value
        if self._serializer is None:
            return validate_data(value)
        return serialize(self._serializer, value)

    @staticmethod
    def _extra_kwargs(
        partition: int | None, headers: Headers | None, timestamp: datetime | int | None
    ) -> dict[str, Any]:
        # Each is checked against what librdkafka takes (a partition is an int32, a timestamp
        # an int64), so a bad value is a ValidationError here, not an OverflowError or a
        # TypeError out of produce().
        kwargs: dict[str, Any] = {}
        if partition is not None:
            if isinstance(partition, bool) or not isinstance(partition, int) or not 0 <= partition < 2**31:
                raise ValidationError("partition must be an int from 0 to 2**31 - 1")
            kwargs["partition"] = partition
        if headers is not None:
            try:
                items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
                pairs = [(name, header_value) for name, header_value in items]
            except (TypeError, ValueError):
                raise ValidationError("headers must be a mapping or (name, value) pairs") from None
            for name, header_value in pairs:
                if not isinstance(name, str) or not isinstance(header_value, bytes | None):
                    raise ValidationError("headers must map str names to bytes values")
                # librdkafka's client crashes the process on a name it cannot encode
                require_text(name, "header name")
            kwargs["headers"] = pairs
        if timestamp is not None:
            if isinstance(timestamp, datetime):
                try:
                    millis = int(timestamp.timestamp() * 1000)
                except (ValueError, OverflowError, OSError):  # a naive datetime.min, for one
                    raise ValidationError("timestamp datetime has no epoch timestamp") from None
            elif isinstance(timestamp, int) and not isinstance(timestamp, bool):
                millis = timestamp
            else:
                raise ValidationError("timestamp must be a datetime or epoch milliseconds")
            if not 0 <= millis <= INT64_MAX:
                raise ValidationError("timestamp must be from the epoch to 2**63 - 1 milliseconds")
            kwargs["timestamp"] = millis
        return kwargs

    async def _produce_when_space(
        self, data: bytes, key: str | bytes | None, callback: Any, kwargs: dict[str, Any]
    ) -> None:
        """The queue is full: wait for deliveries to make room, in send order (the lock is FIFO).

        While anyone waits here, new sends queue behind them instead of overtaking.
        """
        self._require_own_loop()
        self._space_waiters += 1
        self._waiting_for_space = True
        try:
            async with self._space_lock:
                while True:
                    if self._failure is not None:
                        raise self._failure
                    if self._fatal is not None:
                        raise self._fatal
                    if self._refusing_sends:
                        raise ClosedError("producer is closed")
                    self._space.clear()
                    if self._pump is not None:
                        self._pump.mark_busy()  # its reports are served inline, then by the thread
                    try:
                        self._produce(self.topic, data, key, on_delivery=callback, **kwargs)
                    except BufferError:
                        if self.in_flight == 0:  # reported messages of open batches hold no room
                            raise MessageTooLargeError(
                                "message does not fit librdkafka's local queue"
                            ) from None
                        self._observer.on_event(events.KAFKA_QUEUE_FULL, topic=self.topic)
                        await self._space.wait()
                        continue
                    except KafkaException:
                        with map_kafka_errors():
                            raise
                    except Exception as exc:
                        raise _refused_by_produce(exc) from exc
                    self._in_flight += 1
                    return
        finally:
            self._space_left()

    def _space_left(self) -> None:
        """A send or batch stopped waiting for room (queued, refused or failed): a closing
        flush waiting for the last of them re-checks."""
        self._space_waiters -= 1
        self._waiting_for_space = self._space_waiters > 0
        if not self._space_waiters:
            self._drained.set()

    def _produce_error(self, exc: KafkaException) -> ShardlineError:
        """librdkafka refused a message synchronously (too large, unknown partition, ...): the
        error the messages not queued fail with (the shared map, as a value)."""
        return from_kafka_error(exc)

    def _resolve_one(self, future: DeliveryFuture, err: KafkaError | Exception | None, msg: Any) -> None:
        """A report served on the loop thread itself (inline poll): resolve it at once.

        ``err`` is an exception when processing the report raised (see :meth:`_report_failure`).
        """
        self._in_flight -= 1
        if not future.done():
            if err is None:
                future.deliver(msg.partition(), msg.offset())
            else:
                future.set_exception(self._report_failure(err))
                self._observer.on_event(events.RECORDS_FAILED, 1, topic=self.topic)
        if self._waiting_for_space:
            self._space.set()
        if self._in_flight == 0 and not self._open_batches:
            self._drained.set()

    def _settled_inline(self, delivered: int) -> None:
        """``delivered`` futures were resolved with their acks inside one inline poll (loop thread).

        The per-message bookkeeping of :meth:`_resolve_one`, done once per poll.
        """
        self._in_flight -= delivered
        if self._waiting_for_space:
            self._space.set()
        if self._in_flight == 0 and not self._open_batches:
            self._drained.set()
        if delivered:
            self._observer.on_event(events.RECORDS_DELIVERED, delivered, topic=self.topic)

    def _on_round(self, reports: list[Report], batches: list[DeliveryBatch]) -> None:
        """Runs on the event loop: resolve one poll round's futures and batches at once."""
        for batch in batches:
            self._batch_complete(batch)
        delivered = failed = 0
        for future, err, msg in reports:
            if future.done():  # the caller cancelled it
                continue
            if err is None:
                try:
                    future.deliver(msg.partition(), msg.offset())
                except Exception as exc:  # noqa: BLE001 - the message fails with it, the owner hears
                    self._on_callback_error(exc)  # as if poll() had raised it
                    err = exc
                else:
                    delivered += 1
                    continue
            future.set_exception(self._report_failure(err))
            failed += 1
        self._in_flight -= len(reports)
        if self._waiting_for_space:
            self._space.set()
        if self._in_flight == 0 and not self._open_batches:
            self._drained.set()
        if delivered:
            self._observer.on_event(events.RECORDS_DELIVERED, delivered, topic=self.topic)
        if failed:
            self._observer.on_event(events.RECORDS_FAILED, failed, topic=self.topic)

    def _report_failure(self, err: KafkaError | BaseException) -> ShardlineError:
        """The error a message fails with: its report's ``KafkaError`` mapped, a Shardline error
        as it is (a message never queued), or what processing its report raised.

        A report that cannot be processed (a bug, a ``MemoryError``) settles its message all
        the same: librdkafka never reports it again, so nothing else would.  Whether the
        broker has the message is unknown, so the error is retriable, as a timeout is; it
        names the topic and the exception's type, never the payload.
        """
        if isinstance(err, ShardlineError):
            return err
        if isinstance(err, BaseException):
            error = DeliveryError(
                f"topic {self.topic}: the message's delivery report could not be processed"
                f" ({type(err).__name__}); whether it was delivered is unknown",
                retriable=True,
            )
            error.__cause__ = err
            return error
        return self._delivery_error(err)

    def _delivery_error(self, err: KafkaError) -> ShardlineError:
        mapped = from_kafka_error(err)
        if err.fatal():
            if self._fatal is None:
                self._fatal = mapped
            self._ready = False
            mapped = self._fatal
        code = err.code()
        if code in (KafkaError._MSG_TIMED_OUT, KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            error = DeliveryError(f"message not delivered: {err.name()}", retriable=True)
            error.__cause__ = self._failure or self._callback_error or self._last_client_error or mapped
            return error
        return mapped

    def _note_fatal(self, err: KafkaError) -> None:
        """A delivery failure of a batch message (any thread): a fatal one stops sends now."""
        if err.fatal() and self._fatal is None:
            self._fatal = from_kafka_error(err)
            self._ready = False

    def _on_callback_error(self, error: BaseException) -> None:
        """A client callback (``error_cb``, ``oauth_cb``) or a delivery report raised (loop thread).

        A delivery report that raised has failed its message already (:meth:`_report_failure`).

        Polling goes on.  The error is kept as the cause of later delivery failures (an MSK IAM
        token that cannot be signed shows up as the reason messages time out), logged the
        first time by type only (a signer's message may quote credential sources), and counted.
        """
        if isinstance(error, ShardlineError):
            self._callback_error = error
        else:
            self._callback_error = DeliveryError(f"client callback raised {type(error).__name__}")
            self._callback_error.__cause__ = error
        self._callback_errors += 1
        if self._callback_errors == 1:
            log.warning(
                "kafka client callback raised %s on topic %s; carrying on, later failures are counted",
                type(error).__name__,
                self.topic,
            )
        self._observer.on_event(events.KAFKA_CALLBACK_ERRORS, 1, topic=self.topic, error=type(error).__name__)

    def _on_token(self) -> None:
        """An OAUTHBEARER token was handed to librdkafka (its background thread): a token
        failure kept as the cause of later delivery failures no longer explains them.

        A failure (:meth:`_on_callback_error`, through
        :func:`shardline.kafka_oauth.supervised_oauth`) becomes the cause reported with messages
        that time out meanwhile, so an MSK IAM signing failure (STS unreachable, expired
        credentials) is visible, not a bare timeout.
        """
        self._callback_error = None

    def _on_pump_death(self, cause: BaseException) -> None:
        """The delivery thread ended unexpectedly (loop thread): fail what is pending, stop sends."""
        if self._failure is not None:
            return
        failure = BackgroundTaskError(
            f"topic {self.topic}: the delivery thread died ({type(cause).__name__})"
        )
        failure.__cause__ = cause
        self._failure = failure
        self._ready = False
        log.error("topic %s: kafka delivery thread died; purging pending messages", self.topic)
        # Purged messages report at once; this thread serves them, failing their futures.
        try:
            self._producer.purge(in_queue=True, in_flight=True, blocking=False)
        except Exception:
            log.exception("topic %s: purging after the delivery thread died failed", self.topic)
        self._serve_after_death()
        self._drained.set()
        self._space.set()

    def _serve_after_death(self) -> None:
        """No delivery thread any more: the loop serves what librdkafka still has to report
        (purged messages report at once), again each poll timeout while anything is left."""
        pump, loop = self._pump, self._loop
        if pump is None or loop is None or self._client_closed:
            return
        pump.poll_inline()  # a client callback's error is contained there
        pending = getattr(self._producer, "__len__", None)
        if pending is not None and pending():
            loop.call_later(self.config.poll_timeout_s, self._serve_after_death)

    @property
    def _refusing_sends(self) -> bool:
        """Closing: a send waiting for room fails instead of queueing (the pump stops, or
        ``close(timeout)`` purged and must not flush messages queued into the room it made)."""
        return self._purged or (self._pump is not None and self._pump.stopping)

    def _on_client_error(self, err: KafkaError) -> None:
        """librdkafka's ``error_cb`` (delivery thread): connection, auth and fatal errors."""
        mapped = from_kafka_error(err)
        self._last_client_error = mapped
        if err.fatal():
            self._fatal = mapped
            self._ready = False
        # one line per kind of error a minute: librdkafka reports every reconnect attempt
        self._client_errors.warning(
            err.code(), "kafka client error on topic %s: %s", self.topic, type(mapped).__name__
        )
        self._observer.on_event(events.KAFKA_CLIENT_ERROR, topic=self.topic, error=type(mapped).__name__)
