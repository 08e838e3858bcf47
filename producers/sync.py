"""A blocking facade over :class:`~producers.kinesis.KinesisProducer` for non-async code.

It runs the same async producer on a private event loop in a background thread; every call
hops onto that loop, so there is one implementation of batching, retries and flushing.
``send()`` blocks only while the producer does not admit more (its buffer caps, or the
drain-rate admission limit: back-pressure) and returns a
:class:`concurrent.futures.Future` for the acknowledgement.

The loop's thread is supervised: should it die (a ``SystemExit`` or ``KeyboardInterrupt``
raised by a callback on it), every future the facade handed out and every blocked call
fails at once with :class:`~shardline.errors.BackgroundTaskError` naming the cause, instead
of waiting for a loop that will never run again.

No signal handler is installed unless asked: :meth:`SyncKinesisProducer.install_signal_handlers`
makes SIGTERM flush and close the producer (so nothing acknowledged-to-the-caller is lost)
before the previous handler, or the default exit, runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import threading
from collections.abc import Coroutine, Iterable, Sequence
from types import FrameType, TracebackType
from typing import Any, Self, TypeVar

from producers.kinesis import KinesisProducer
from producers.tickets import BatchAcks
from shardline.errors import BackgroundTaskError, ClosedError
from shardline.records import Ack

__all__ = ["SyncKinesisProducer"]

_T = TypeVar("_T")

_log = logging.getLogger(__name__)

_CLOSE_MARGIN = 5.0
"""Seconds a blocking close(timeout) waits beyond ``timeout`` for the loop to finish closing."""


def _settle_into(source: asyncio.Future[_T], target: concurrent.futures.Future[_T]) -> None:
    """Give the caller's thread-safe future the outcome of the loop's future, and let the
    caller's cancellation reach the loop (runs on the loop thread)."""
    loop = source.get_loop()

    def copy(done: asyncio.Future[_T]) -> None:
        if target.done():
            return
        if done.cancelled():
            target.cancel()
        elif (error := done.exception()) is not None:
            target.set_exception(error)
        else:
            target.set_result(done.result())

    def propagate_cancel(caller: concurrent.futures.Future[_T]) -> None:
        if caller.cancelled():
            loop.call_soon_threadsafe(source.cancel)

    source.add_done_callback(copy)
    target.add_done_callback(propagate_cancel)


class SyncKinesisProducer:
    """Blocking producer: ``SyncKinesisProducer("telemetry").send(b"...", partition_key="k")``.

    Takes the same arguments as :class:`~producers.kinesis.KinesisProducer` and starts at once.
    """

    def __init__(self, *args: Any, close_timeout: float | None = None, **kwargs: Any) -> None:
        self._close_timeout = close_timeout
        self._loop = asyncio.new_event_loop()
        self._closed = False
        self._stopping = False
        self._lock = threading.Lock()
        self._failure: BackgroundTaskError | None = None
        # Every future handed out or waited on and not resolved yet: what the loop's death fails.
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._thread = threading.Thread(target=self._serve, name="kinesis-producer", daemon=True)
        self._thread.start()
        try:
            self._producer = self._call(self._build(args, kwargs))
        except BaseException:
            self._stop_loop()
            raise

    @staticmethod
    async def _build(args: tuple[Any, ...], kwargs: dict[str, Any]) -> KinesisProducer:
        producer = KinesisProducer(*args, **kwargs)
        await producer.start()
        return producer

    def _serve(self) -> None:
        """The loop thread's body, and its owner: a death fails everything still pending."""
        try:
            self._loop.run_forever()
        except BaseException as exc:  # noqa: BLE001 - reported to every waiting caller below
            cause: BaseException = exc
        else:
            if self._stopping:
                return
            cause = RuntimeError("event loop stopped")
        failure = BackgroundTaskError(f"the producer's event loop thread died ({type(cause).__name__})")
        failure.__cause__ = cause
        _log.error("kinesis producer: event loop thread died; failing every pending call", exc_info=cause)
        with self._lock:
            self._failure = failure
            pending, self._pending = list(self._pending), set()
        for future in pending:
            if not future.done():
                future.set_exception(failure)

    def _track(self, future: concurrent.futures.Future[_T]) -> concurrent.futures.Future[_T]:
        with self._lock:
            if self._failure is not None:
                future.set_exception(self._failure)
                return future
            self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return future

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        if self._failure is not None:
            coro.close()
            raise self._failure
        if self._loop.is_closed():
            coro.close()
            raise ClosedError("producer is closed")
        return self._track(asyncio.run_coroutine_threadsafe(coro, self._loop)).result(timeout)

    def _buffer(self, result: concurrent.futures.Future[_T], coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro``, which buffers records and settles ``result`` with their outcome.

        A call refused (bad input, ``BufferFullError``) never settles ``result``, which
        nobody else holds: it is forgotten, not kept pending until close.
        """
        try:
            self._call(coro)
        except BaseException:
            with self._lock:
                self._pending.discard(result)
            raise

    @property
    def producer(self) -> KinesisProducer:
        """The async producer underneath (use only from its loop)."""
        return self._producer

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def send(
        self,
        data: Any,
        *,
        partition_key: str | None = None,
        explicit_hash_key: int | None = None,
        event_id: str | None = None,
        block: bool | None = None,
    ) -> concurrent.futures.Future[Ack]:
        """Buffer one record (blocking while the buffer is full); the future gives its Ack."""
        if self._closed:
            raise ClosedError("producer is closed")
        result: concurrent.futures.Future[Ack] = self._track(concurrent.futures.Future())

        async def buffer() -> None:
            future = await self._producer.send(
                data,
                partition_key=partition_key,
                explicit_hash_key=explicit_hash_key,
                event_id=event_id,
                block=block,
            )
            _settle_into(future, result)

        self._buffer(result, buffer())
        return result

    def send_and_wait(self, data: Any, **kwargs: Any) -> Ack:
        """Send one record and block until it is acknowledged (or raise its error)."""
        return self.send(data, **kwargs).result()

    def send_many(
        self,
        values: Iterable[Any],
        keys: Sequence[str | None] | None = None,
        *,
        block: bool | None = None,
    ) -> concurrent.futures.Future[BatchAcks]:
        """Buffer many records at once (all validated first); one future for the batch.

        Same arguments as :meth:`KinesisProducer.send_many`: values, and optionally one
        partition key per value.
        """
        if self._closed:
            raise ClosedError("producer is closed")
        result: concurrent.futures.Future[BatchAcks] = self._track(concurrent.futures.Future())
        materialised = list(values)
        materialised_keys = None if keys is None else list(keys)

        async def buffer() -> None:
            future = await self._producer.send_many(materialised, materialised_keys, block=block)
            _settle_into(future, result)

        self._buffer(result, buffer())
        return result

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything buffered so far is acknowledged or has failed."""
        self._call(self._producer.flush(), timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush, close the producer and stop the background loop.  Safe to call twice.

        ``timeout`` (default: the ``close_timeout`` given at construction) has the meaning of
        :meth:`KinesisProducer.close`: records still pending after that many seconds fail with
        :class:`~shardline.errors.DeliveryError`.  Raises the producer's
        :class:`~shardline.errors.BackgroundTaskError` if its background work or the loop's
        thread died.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if timeout is None:
            timeout = self._close_timeout
        wait = None if timeout is None else timeout + _CLOSE_MARGIN
        try:
            self._call(self._producer.close(timeout), wait)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._stopping = True
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        if self._failure is not None:
            self._cancel_orphans()
        if not self._loop.is_running():
            self._loop.close()

    def _cancel_orphans(self) -> None:
        """The loop's thread died with tasks suspended on it: cancel them here, bounded, so
        their cleanup runs (client sessions closed) instead of being dropped unfinished."""
        # Every outcome was already reported to the callers: what the loop would still log
        # (calls it never started, results nobody reads any more) is noise now.
        self._loop.set_exception_handler(lambda _loop, _context: None)
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        if tasks:
            try:
                self._loop.run_until_complete(asyncio.wait(tasks, timeout=_CLOSE_MARGIN))
            except BaseException:  # noqa: BLE001 - best effort on an already failed producer
                _log.warning("kinesis producer: cleanup after the loop thread died failed", exc_info=True)

    def install_signal_handlers(self, signals: Iterable[int] = (signal.SIGTERM,)) -> None:
        """On these signals, flush and close before chaining to the previous handler.

        Must be called from the main thread (a Python rule for signal handlers).  Without a
        previous Python handler the process then exits with 128 + the signal number.
        """
        for signum in signals:
            previous = signal.getsignal(signum)

            def handler(received: int, frame: FrameType | None, previous: Any = previous) -> None:
                self.close()
                if callable(previous):
                    previous(received, frame)
                else:
                    raise SystemExit(128 + received)

            signal.signal(signum, handler)
