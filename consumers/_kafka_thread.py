"""The thread a confluent-kafka consumer's blocking calls run on, and its bounded close.

Every Kafka consumer Shardline builds (the group member, replay ranges, ``tail``, the replay
planner's offset lookup) runs its blocking calls, in order, on one :class:`ConsumerThread`
and ends with :meth:`ConsumerThread.close_consumer`.  ``Consumer.close()`` takes no timeout:
with the brokers gone librdkafka waits for its broker threads and, for a group member, for
the last commit and the leave-group request; tens of seconds were seen, and ``replay``,
``consume`` or ``tail`` hung that long at shutdown or on Ctrl-C.  The close is therefore
awaited for at most ``KafkaClientConfig.consumer_close_timeout_s`` and then abandoned.

The thread is a daemon, unlike the workers of ``concurrent.futures.ThreadPoolExecutor``,
which are joined at interpreter exit: an abandoned close still inside librdkafka there held
the process after ``main`` returned, for as long as the close took.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

from shardline.errormap import map_kafka_errors

__all__ = ["ConsumerThread"]

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")

_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class ConsumerThread(Executor):
    """One daemon thread running one consumer's calls in the order they were submitted.

    confluent-kafka's consumer is used from one thread at a time, so its calls (and its close,
    after the calls queued before it) are serialised here.  The thread starts on the first
    call and ends after :meth:`shutdown`; the process can exit while it is inside librdkafka.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._shut = False

    def __repr__(self) -> str:
        return f"ConsumerThread({self._name!r})"

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = Future()
        with self._lock:
            if self._shut:
                raise RuntimeError(f"{self._name}: no calls after shutdown")
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()
            self._work.put((future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """End the thread after the calls already submitted (``cancel_futures`` drops them)."""
        with self._lock:
            if not self._shut:
                self._shut = True
                if cancel_futures:
                    self._cancel_queued()
                self._work.put(None)
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    async def close_consumer(self, close: Callable[[], object], *, timeout_s: float, topic: str) -> None:
        """Run ``close`` after the calls queued before it, waiting for it at most ``timeout_s``.

        A ``KafkaException`` from ``close`` is raised here as its Shardline error.  Past the
        bound one WARNING names the topic and this returns; the close goes on on the daemon
        thread, and its outcome, whenever it comes, is dropped (the caller has moved on).
        A cancelled caller leaves the close running the same way.
        """

        def mapped_close() -> None:
            with map_kafka_errors():
                close()

        done = asyncio.wrap_future(self.submit(mapped_close))
        self.shutdown(wait=False)
        try:
            # Shielded: a timeout or a cancellation must not cancel a close still queued
            # behind a call in flight, which would leave the client open for good.
            await asyncio.wait_for(asyncio.shield(done), timeout_s)
        except TimeoutError:
            done.add_done_callback(_drop_outcome)
            log.warning(
                "closing the Kafka consumer of %s took over %.3g s; abandoned (it ends with the process)",
                topic,
                timeout_s,
            )
        except asyncio.CancelledError:
            done.add_done_callback(_drop_outcome)
            raise

    def _serve(self) -> None:
        while (work := self._work.get()) is not None:
            future, fn, args, kwargs = work
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller through its future
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _cancel_queued(self) -> None:
        while True:
            try:
                work = self._work.get_nowait()
            except queue.Empty:
                return
            if work is not None:
                work[0].cancel()


def _drop_outcome(done: asyncio.Future[None]) -> None:
    """Retrieve an abandoned close's outcome, so no "exception was never retrieved" is logged."""
    if not done.cancelled():
        done.exception()
