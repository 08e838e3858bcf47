"""The sync facade called from places that cannot block: its loop's thread, a forked child,
interpreter exit.

Every wait is bounded (a future's or a join's timeout, a subprocess timeout), so a hang fails
the test instead of sticking.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import faulthandler
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from producers.sync import SyncKinesisProducer
from shardline.errors import ClosedError
from shardline.records import Ack
from tests.unit.producers.fake_kinesis import FakeKinesis

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}
BOUND = 5.0
ROOT = Path(__file__).resolve().parents[3]


def test_close_from_a_delivery_callback_closes_without_blocking_the_loop() -> None:
    fake = FakeKinesis()
    producer = SyncKinesisProducer("s", client=fake, **FAST)
    closed = threading.Event()

    def close_on_ack(_future: concurrent.futures.Future[Ack]) -> None:
        producer.close()  # runs on the loop's thread: before, it waited there for ever
        closed.set()

    first = producer.send(b"x", partition_key="k")
    first.add_done_callback(close_on_ack)
    assert isinstance(first.result(timeout=BOUND), Ack)
    assert closed.wait(BOUND)
    producer.close(timeout=BOUND)  # waits for the close the callback started
    assert not producer._thread.is_alive()
    with pytest.raises(ClosedError):
        producer.send(b"late", partition_key="k")


def test_a_blocking_call_from_the_loops_thread_raises_instead_of_waiting() -> None:
    producer = SyncKinesisProducer("s", client=FakeKinesis(), **FAST)
    raised: list[BaseException] = []

    def flush_on_ack(_future: concurrent.futures.Future[Ack]) -> None:
        try:
            producer.flush()
        except RuntimeError as exc:
            raised.append(exc)

    future = producer.send(b"x", partition_key="k")
    future.add_done_callback(flush_on_ack)
    future.result(timeout=BOUND)
    producer.flush(timeout=BOUND)  # before: the loop was stuck in the callback's flush
    producer.close(timeout=BOUND)
    assert len(raised) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_closed_error_not_a_hang() -> None:
    fake = FakeKinesis()
    producer = SyncKinesisProducer("s", client=fake, linger=60.0, rate_limit_percent=None)
    copied = producer.send(b"buffered", partition_key="k")  # still pending when the child is made
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports by its exit status only
        outcome = [1]

        def use_the_copy() -> None:
            try:
                copied.result(timeout=BOUND)
            except ClosedError:
                try:
                    producer.send(b"child", partition_key="k")
                except ClosedError as exc:
                    outcome[0] = 0 if "os.fork()" in str(exc) else 4
                    producer.close()  # quiet: the parent owns the records
            except BaseException:  # any other outcome is the failure reported
                outcome[0] = 2

        worker = threading.Thread(target=use_the_copy, daemon=True)
        worker.start()
        worker.join(BOUND * 2)
        if worker.is_alive():
            os._exit(3)
        faulthandler.dump_traceback_later(BOUND, exit=True)  # a hang ends the child with status 1
        producer.close()  # from the forking thread too: quiet, no wait for the parent's records
        faulthandler.cancel_dump_traceback_later()
        os._exit(outcome[0])
    _, status = os.waitpid(pid, 0)
    producer.close(timeout=BOUND)
    assert isinstance(copied.result(timeout=BOUND), Ack)  # the parent's record is delivered
    assert os.waitstatus_to_exitcode(status) == 0


_EXIT_WITHOUT_CLOSE = """
import atexit
from tests.unit.producers.fake_kinesis import FakeKinesis
fake = FakeKinesis()
atexit.register(lambda: print("written", len(fake.written)))  # registered first: runs last
from producers.sync import SyncKinesisProducer
producer = SyncKinesisProducer("s", client=fake, linger=60.0, rate_limit_percent=None, aggregate=False)
for i in range(10):
    producer.send(b"x", partition_key=f"k{i}")
"""


def test_records_buffered_at_interpreter_exit_are_delivered() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_WITHOUT_CLOSE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["written", "10"]  # before: 0, the daemon loop thread stopped mid-linger


_EXIT_AFTER_POOLS_SHUT = """
import asyncio, atexit
from tests.unit.producers.fake_kinesis import FakeKinesis

class LooksUpHosts(FakeKinesis):
    async def put_records(self, **kwargs):
        # a new connection's host-name lookup: aiohttp runs getaddrinfo on the default executor
        await asyncio.get_running_loop().run_in_executor(None, lambda: None)
        return await super().put_records(**kwargs)

fake = LooksUpHosts()
atexit.register(lambda: print("written", len(fake.written)))  # registered first: runs last
from producers.sync import SyncKinesisProducer
producer = SyncKinesisProducer(
    "s", client=fake, linger=60.0, rate_limit_percent=None, aggregate=False, record_ttl=3.0,
    initial_backoff=0.01, max_backoff=0.02,
)
for i in range(10):
    producer.send(b"x", partition_key=f"k{i}")
"""


def test_records_flushed_at_exit_can_still_look_up_host_names() -> None:
    done = _run_child(_EXIT_AFTER_POOLS_SHUT)
    assert done.returncode == 0, done.stderr
    # before: 0; concurrent.futures shuts the loop's default executor down before atexit runs
    assert done.stdout.split() == ["written", "10"], done.stderr
    assert "not delivered" not in done.stderr


_EXIT_WITH_ENDPOINT_REFUSING = """
from tests.unit.producers.fake_kinesis import FakeKinesis
from producers.sync import SyncKinesisProducer
fake = FakeKinesis(fault=lambda call, entry: "KMSAccessDeniedException")
producer = SyncKinesisProducer("s", client=fake, linger=60.0, rate_limit_percent=None, aggregate=False)
for i in range(7):
    producer.send(b"x", partition_key=f"k{i}")
producer.send_many([b"y", b"z"], ["a", "b"])
"""


def test_records_lost_at_exit_are_reported() -> None:
    done = _run_child(_EXIT_WITH_ENDPOINT_REFUSING)
    assert done.returncode == 0, done.stderr
    # before: nothing said; the futures holding the errors were never read
    assert "9 records still pending at interpreter exit were not delivered" in done.stderr, done.stderr
    assert "(KmsError)" in done.stderr


def _run_child(source: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", source], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


_EXIT_WHILE_ANOTHER_THREAD_CLOSES = """
import asyncio, atexit, threading
from tests.unit.producers.fake_kinesis import FakeKinesis

class Held(FakeKinesis):
    def __init__(self):
        super().__init__()
        self.gate = asyncio.Event()  # never opened: the records fail when their ttl runs out
        self.started = threading.Event()
    async def put_records(self, **kwargs):
        self.started.set()
        return await super().put_records(**kwargs)

fake = Held()
futures = []
atexit.register(lambda: print("settled", sum(f.done() for f in futures)))  # registered first: runs last
from producers.sync import SyncKinesisProducer
producer = SyncKinesisProducer(
    "s", client=fake, linger=60.0, rate_limit_percent=None, aggregate=False, record_ttl=3.0
)
futures.extend(producer.send(b"x", partition_key=f"k{i}") for i in range(10))
threading.Thread(target=producer.close, daemon=True).start()
assert fake.started.wait(5)  # the daemon thread's close is flushing as the program ends
"""


def test_interpreter_exit_waits_for_a_close_running_on_another_thread() -> None:
    done = _run_child(_EXIT_WHILE_ANOTHER_THREAD_CLOSES)
    assert done.returncode == 0, done.stderr
    # before: 0, exit went on without the close and stopped its daemon thread mid-flush
    assert done.stdout.split() == ["settled", "10"], done.stderr
    assert "10 records still pending at interpreter exit were not delivered" in done.stderr


_SIGTERM_INSIDE_SEND = """
import atexit, signal
from tests.unit.producers.fake_kinesis import FakeKinesis
fake = FakeKinesis()
atexit.register(lambda: print("written", len(fake.written)))  # registered first: runs last
from producers.sync import SyncKinesisProducer
producer = SyncKinesisProducer("s", client=fake, linger=60.0, rate_limit_percent=None, aggregate=False)
for i in range(10):
    producer.send(b"x", partition_key=f"k{i}")
producer.install_signal_handlers()

class SignalledWhileTracking(set):
    # SIGTERM arrives while send() tracks its future, once: the handler runs right there
    fired = False
    def add(self, future):
        if not SignalledWhileTracking.fired:
            SignalledWhileTracking.fired = True
            signal.raise_signal(signal.SIGTERM)
        super().add(future)

producer._pending = SignalledWhileTracking(producer._pending)
producer.send(b"last", partition_key="k")
"""


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs SIGTERM")
def test_sigterm_arriving_inside_send_closes_instead_of_deadlocking() -> None:
    try:
        done = _run_child(_SIGTERM_INSIDE_SEND, timeout=15)
    except subprocess.TimeoutExpired:  # before: the handler's close() waited for the lock send() held
        pytest.fail("the SIGTERM handler deadlocked")
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert done.stdout.split() == ["written", "10"], done.stderr


class _HoldsShardZero(FakeKinesis):
    """Holds every PutRecords call carrying a record for the first shard; answers the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.held = threading.Event()
        self.release: asyncio.Event | None = None

    async def put_records(self, **kwargs: Any) -> dict[str, Any]:
        if any(entry.get("ExplicitHashKey") == "0" for entry in kwargs["Records"]):
            self.release = asyncio.Event()
            self.held.set()
            await self.release.wait()
        return await super().put_records(**kwargs)


def test_a_delivery_callback_waiting_for_another_future_raises_instead_of_stopping_the_loop() -> None:
    fake = _HoldsShardZero()
    producer = SyncKinesisProducer("s", client=fake, aggregate=False, **FAST)
    held = producer.send(b"held", partition_key="k", explicit_hash_key=0)
    assert fake.held.wait(BOUND)
    raised: list[BaseException] = []
    called = threading.Event()

    def wait_for_the_held_record(_future: concurrent.futures.Future[Ack]) -> None:
        try:
            held.result()  # runs on the loop's thread: before, it stopped the loop for good
        except BaseException as exc:
            raised.append(exc)
        finally:
            called.set()

    free = producer.send(b"free", partition_key="k", explicit_hash_key=2**127 + 1)
    free.add_done_callback(wait_for_the_held_record)
    assert called.wait(BOUND)
    assert len(raised) == 1
    assert isinstance(raised[0], RuntimeError)
    assert fake.release is not None
    producer._loop.call_soon_threadsafe(fake.release.set)
    assert isinstance(held.result(timeout=BOUND), Ack)  # from another thread it still waits
    producer.close(timeout=BOUND)
