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

Blocking from the loop's own thread (a delivery callback, an observer) would wait for the
loop it stops: ``close()`` there starts the close and returns, every other call raises
``RuntimeError`` at once.  A producer still open at interpreter exit is closed then (flushed,
bounded by its ``close_timeout``), so records buffered when the program ends are delivered
or reported; in a child made by ``os.fork()`` after start, whose copy has no loop thread,
every call raises :class:`~shardline.errors.ClosedError` and each future copied from the
parent fails with it, instead of waiting for a thread that was not copied.

No signal handler is installed unless asked: :meth:`SyncKinesisProducer.install_signal_handlers`
makes SIGTERM flush and close the producer (so nothing acknowledged-to-the-caller is lost)
before the previous handler, or the default exit, runs.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable, Sequence
from types import FrameType, TracebackType
from typing import Any, ParamSpec, Self, TypeVar

from producers.kinesis import KinesisProducer
from producers.tickets import BatchAcks
from shardline.errors import BackgroundTaskError, ClosedError, ShardlineError
from shardline.records import Ack
from shardline.validation import batch_columns

__all__ = ["SyncKinesisProducer"]

_T = TypeVar("_T")
_P = ParamSpec("_P")

_log = logging.getLogger(__name__)

_CLOSE_MARGIN = 5.0
"""Seconds a blocking close(timeout) waits beyond ``timeout`` for the loop to finish closing."""

_open: weakref.WeakSet[SyncKinesisProducer] = weakref.WeakSet()
"""Producers whose loop thread runs: what interpreter exit closes and a forked child disowns."""


class _RecordFuture(concurrent.futures.Future[_T]):
    """The future of a ``send()`` or ``send_many()``: what interpreter exit counts when lost.

    Its ``result()`` and ``exception()`` refuse to wait on the loop's own thread (a delivery
    callback reading another record's future): only that loop can settle it, so the wait
    stopped the loop, and with it every record, for good.
    """

    def __init__(self, loop_thread: threading.Thread) -> None:
        super().__init__()
        self._loop_thread = loop_thread

    def _refuse_to_block_the_loop(self) -> None:
        if not self.done() and threading.current_thread() is self._loop_thread:
            raise RuntimeError(
                "waiting for a SyncKinesisProducer future on the producer's own event loop thread"
                " (from a delivery callback) would wait for ever; add a callback to it instead"
            )

    def result(self, timeout: float | None = None) -> _T:
        self._refuse_to_block_the_loop()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._refuse_to_block_the_loop()
        return super().exception(timeout)


class _ExitExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loops' default executor from interpreter exit on: each call on a thread of its own.

    concurrent.futures shuts every thread pool down before ``atexit`` runs, so the default
    executor refused the host-name lookup of each new connection: records flushed at exit
    failed after their time to live once the pooled connection had gone (an idle device).
    Where threads may no longer start (Python 3.12.0-3.12.x at exit) the call runs inline,
    on the loop's thread: a lookup blocks the loop a moment rather than failing.
    """

    def submit(
        self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> concurrent.futures.Future[_T]:
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - the awaiting coroutine gets it
                future.set_exception(exc)
            else:
                future.set_result(result)

        try:
            threading.Thread(target=run, name="kinesis-producer-exit-call", daemon=True).start()
        except RuntimeError:  # "can't create new thread at interpreter shutdown"
            run()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to shut down: no thread outlives its call."""


def _close_open_producers() -> None:
    """At interpreter exit: close every producer still open, so its buffer is delivered.

    The loop runs on a daemon thread, which exit would stop mid-request, silently dropping
    every record still buffered.  Nobody reads the records' futures any more, so those that
    fail are counted in a warning instead of vanishing.
    """
    for producer in list(_open):
        loop = producer._loop
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.set_default_executor, _ExitExecutor(max_workers=1))
        records = [future for future in list(producer._pending) if isinstance(future, _RecordFuture)]
        try:
            producer.close()
        except Exception as exc:  # noqa: BLE001 - exit goes on; each record's future holds its outcome
            _log.warning("kinesis producer: closing at interpreter exit failed: %s", type(exc).__name__)
        _report_lost_at_exit(records)


def _report_lost_at_exit(records: Sequence[concurrent.futures.Future[Any]]) -> None:
    """Log how many records still pending at interpreter exit were not delivered, and why."""
    lost = 0
    causes: set[str] = set()
    for future in records:
        if not future.done() or future.cancelled():
            continue
        error = future.exception()
        if error is not None:
            lost += 1
            causes.add(type(error).__name__)
        elif isinstance(acks := future.result(), BatchAcks) and acks.failed:
            lost += len(acks.failed)
            causes.update(type(failure).__name__ for failure in acks.failed.values())
    if lost:
        _log.warning(
            "kinesis producer: %d records still pending at interpreter exit were not delivered (%s)",
            lost,
            ", ".join(sorted(causes)),
        )


def _disown_in_forked_child() -> None:
    """In a child of ``os.fork()``: only the forking thread was copied, so no loop runs."""
    for producer in list(_open):
        producer._disown_after_fork()
    _open.clear()


atexit.register(_close_open_producers)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_disown_in_forked_child)


def _fail(future: concurrent.futures.Future[Any], error: BaseException) -> None:
    """Fail ``future`` unless it is settled already, by the loop or another thread meanwhile."""
    if not future.done():
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            future.set_exception(error)


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
        # Taken (never released) by the first close(): a claim that never blocks.  No lock is
        # held anywhere else either: the SIGTERM handler's close() runs in the main thread,
        # wherever send() was, and a lock held there deadlocked the process (the handler, or
        # the loop thread it then waited for, blocked on it).
        self._close_claim = threading.Lock()
        self._stopping = False
        self._failure: ShardlineError | None = None
        # Every future handed out or waited on and not resolved yet: what the loop's death fails.
        # Changed by single set operations only, atomic under the GIL.
        self._pending: set[concurrent.futures.Future[Any]] = set()
        # Set once a close has finished with the records (delivered, or failed): what a second
        # close() waits for, from any thread, a signal handler interrupting the first included.
        self._close_finished = threading.Event()
        self._stopped = False  # the loop runs no more: a call now is refused, not queued on it
        self._parent_pid = os.getpid()
        self._thread = threading.Thread(target=self._serve, name="kinesis-producer", daemon=True)
        self._thread.start()
        try:
            self._producer = self._call(self._build(args, kwargs))
        except BaseException:
            self._stop_loop()
            raise
        _open.add(self)

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
                self._fail_leftovers()
                if not self._loop.is_closed() and not asyncio.all_tasks(self._loop):
                    self._loop.close()  # stopped by a close() started on this thread: nobody joins it
                return
            cause = RuntimeError("event loop stopped")
        failure = BackgroundTaskError(f"the producer's event loop thread died ({type(cause).__name__})")
        failure.__cause__ = cause
        _log.error("kinesis producer: event loop thread died; failing every pending call", exc_info=cause)
        _open.discard(self)  # already failed: nothing for interpreter exit to close
        self._failure = failure  # first: a call tracked from now on fails at once (_track)
        for future in list(self._pending):
            _fail(future, failure)
        self._close_finished.set()  # a close waiting for this loop waits no longer

    def _refusal(self) -> ShardlineError | None:
        """Why no call may wait for the loop any more (it died, or stopped), if so."""
        if self._failure is not None:
            return self._failure
        return ClosedError("producer is closed") if self._stopped else None

    def _track(self, future: concurrent.futures.Future[_T]) -> concurrent.futures.Future[_T]:
        if (refusal := self._refusal()) is not None:
            _fail(future, refusal)
            return future
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        if (refusal := self._refusal()) is not None:  # the loop died or stopped meanwhile
            _fail(future, refusal)
        return future

    def _closed_error(self) -> ClosedError:
        """Why calls are refused once closed: the fork's explanation in a forked child."""
        failure = self._failure
        return failure if isinstance(failure, ClosedError) else ClosedError("producer is closed")

    def _on_loop_thread(self) -> bool:
        """Whether the caller runs on the loop's thread: compared as thread objects, since a
        thread started after the loop's ended (or in a forked child) may get its old id."""
        return threading.current_thread() is self._thread

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        if self._failure is not None:
            coro.close()
            raise self._failure
        if self._on_loop_thread():
            coro.close()
            raise RuntimeError(
                "a blocking SyncKinesisProducer call on its own event loop's thread (from a callback"
                " or an observer) would wait for ever; only close() may be called there"
            )
        if self._stopped or self._loop.is_closed():
            coro.close()
            raise ClosedError("producer is closed")
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:  # the loop was closed, now or by a close() that raced this call
            coro.close()
            raise ClosedError("producer is closed") from None
        return self._track(future).result(timeout)

    def _fail_leftovers(self) -> None:
        """The loop has stopped: fail every future it can no longer settle (a close that was
        interrupted or outlived its bound, a call that raced the close past its checks), and
        refuse those still to come, so no caller waits for it for ever."""
        self._stopped = True  # first: a call tracked from now on fails at once (_track)
        error = self._failure or ClosedError("producer was closed before this call finished")
        for future in list(self._pending):
            _fail(future, error)

    def _buffer(self, result: concurrent.futures.Future[_T], coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro``, which buffers records and settles ``result`` with their outcome.

        A call refused (bad input, ``BufferFullError``) never settles ``result``, which
        nobody else holds: it is forgotten, not kept pending until close.
        """
        try:
            self._call(coro)
        except BaseException:
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
            raise self._closed_error()
        result: concurrent.futures.Future[Ack] = self._track(_RecordFuture(self._thread))

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
            raise self._closed_error()
        # Read here, in the caller's thread (a generator may belong to it), with the async
        # producer's own checks: list() made a str of keys one key per character.
        materialised, given = batch_columns(values, keys, copy=True)
        materialised_keys = None if keys is None else given
        result: concurrent.futures.Future[BatchAcks] = self._track(_RecordFuture(self._thread))

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

        Called on the loop's own thread (from a delivery callback or an observer), it starts
        the close and returns at once: waiting there would block the loop that closes.  A
        close from another thread (or from a signal handler that interrupted a close) while
        one runs waits for that one to finish with the records, bounded by its own timeout:
        returning at once told the caller everything was flushed while it was not.

        Interrupted (``KeyboardInterrupt``, a signal handler's ``SystemExit``) or past its
        bound, the close is cancelled on the loop, which fails every record still pending with
        :class:`~shardline.errors.DeliveryError` and stops the requests, before the loop
        stops: stopping it mid-close left those records' futures unresolved for ever.
        """
        first = self._close_claim.acquire(blocking=False)
        self._closed = True
        if timeout is None:
            timeout = self._close_timeout
        wait = None if timeout is None else timeout + _CLOSE_MARGIN
        if self._on_loop_thread():
            if first:
                self._stopping = True
                self._loop.create_task(self._close_on_loop(timeout), name="kinesis-producer-close")
            return
        if not first:
            self._close_finished.wait(wait)
            if self._stopping and self._thread.is_alive():
                self._thread.join(wait)  # a close started on the loop's thread ends the loop itself
            return
        closing: concurrent.futures.Future[None] | None = None
        try:
            if self._failure is not None:
                raise self._failure
            if self._loop.is_closed():
                raise ClosedError("producer is closed")
            closing = asyncio.run_coroutine_threadsafe(self._close_and_report(timeout), self._loop)
            self._track(closing).result(wait)
        except BaseException:
            if closing is not None and not self._close_finished.is_set():
                # Cancelled, the async close fails what is pending and stops its requests.
                closing.cancel()
                self._close_finished.wait(_CLOSE_MARGIN)
            raise
        finally:
            self._close_finished.set()
            self._stop_loop()
            _open.discard(self)  # only now: interpreter exit meanwhile waits for this close

    async def _close_and_report(self, timeout: float | None) -> None:
        """The async close, telling waiting closers when the records are settled (loop thread)."""
        try:
            await self._producer.close(timeout)
        finally:
            self._close_finished.set()

    async def _close_on_loop(self, timeout: float | None) -> None:
        """A close() started on the loop's thread: close the producer, then end the loop."""
        try:
            await self._producer.close(timeout)
        except Exception as exc:  # noqa: BLE001 - no caller waits: each record's future holds its outcome
            _log.warning("kinesis producer: close from a callback failed: %s", type(exc).__name__)
        finally:
            _open.discard(self)
            self._close_finished.set()
            self._loop.stop()

    def _disown_after_fork(self) -> None:
        """In a forked child: this copy's loop thread does not exist, so fail instead of waiting."""
        failure = ClosedError(
            f"this producer was started in process {self._parent_pid} and cannot be used after"
            " os.fork(); create a new producer in the child"
        )
        self._failure = failure
        self._close_claim.acquire(blocking=False)  # a close() here is never the first: quiet
        self._closed = True
        self._close_finished = threading.Event()
        self._close_finished.set()  # no close of this copy will run: a close() here returns at once
        for future in list(self._pending):
            _fail(future, failure)

    def _stop_loop(self) -> None:
        self._stopping = True
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        if not self._loop.is_closed():
            if self._failure is not None or asyncio.all_tasks(self._loop):
                self._cancel_orphans()
            self._fail_leftovers()
        if not self._loop.is_running():
            self._loop.close()

    def _cancel_orphans(self) -> None:
        """The loop stopped with tasks suspended on it (its thread died, or a close was
        interrupted): cancel them here, bounded, so their cleanup runs (client sessions
        closed) instead of being dropped unfinished."""
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
        previous Python handler the process then exits with 128 + the signal number.  A close
        that raises (the producer had failed: each record's future already holds its error)
        is logged, and the signal still goes on: raised from the handler, it replaced the
        exit status with 1 and skipped the previous handler's own shutdown.
        """
        for signum in signals:
            previous = signal.getsignal(signum)

            def handler(received: int, frame: FrameType | None, previous: Any = previous) -> None:
                try:
                    self.close()
                except Exception as exc:  # noqa: BLE001 - reported by each record's future; the signal goes on
                    _log.warning(
                        "kinesis producer: closing on signal %d failed: %s", received, type(exc).__name__
                    )
                if callable(previous):
                    previous(received, frame)
                else:
                    raise SystemExit(128 + received)

            signal.signal(signum, handler)
