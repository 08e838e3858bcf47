"""Property: whatever the broker and the client do, nothing accepted is lost, reported twice or hung.

Hypothesis draws a small program run against :class:`ScriptedBroker`, a
:class:`~tests.unit.kafka.fake_kafka_producer.FakeProducer` playing librdkafka and the broker
from a fault plan: a small local queue (``BufferError`` back-pressure); heavy messages, refused
while the queue holds anything (its byte limit) although lighter ones fit; delivery reports
carrying retriable, permanent or fatal ``KafkaError`` objects; acknowledged messages whose
report Shardline cannot process (reading the message raises, as a bug in the report function
would); messages the broker never answers (they time out, or ``close(timeout)`` purges them);
a ``poll()`` that raises once before serving its reports, as confluent-kafka re-raises what a
client callback raised.  The broker answers in a drawn partition order (reports arrive out of
produce order across partitions) whenever a ``poll()`` runs or, while the program stalls it,
only when a step says so.  Steps: ``send(value, key)`` and ``send_many(values, keys)``
(started as tasks, awaited at once or left running), bursts of sends (which reach ``send()``'s
inline poll), awaiting a call's future, ``flush()``, pauses, stalls and partial deliveries;
then ``close()``.  After it:

1. every ``send`` either raised a Shardline error the plan explains (and nothing of it was
   produced) or returned a future that ends with the :class:`~shardline.records.KafkaAck`
   naming the very partition and offset the fake gave that message, or with the error class
   its report maps to (a report that raised: a retriable DeliveryError caused by what it
   raised, surfaced once through the producer's callback-error count);
2. every ``send_many`` batch accounts for each of its messages exactly once, acknowledged the
   same way or failed with its report's error (or, never handed to the client, with an error
   the plan explains), and its ``end_offsets()`` agree with its acks;
3. nothing is produced twice, the producer's delivered and failed counters equal the outcomes,
   and it counts nothing in flight;
4. per key, acknowledged messages sit in their partition in call order (docs/kafka.md: equal
   keys land "in one partition, in send order", and sends waiting for room go on "in call
   order").  Nothing is asserted across keys, nor about retries (librdkafka's business).

Every program runs under a watchdog, so a hang fails the example instead of stalling the run,
and no delivery thread may outlive its example.

Four further properties add one kind of fault each to the same programs, each with pinned
examples of a defect it found: a message larger than the whole local queue (a batch waited
for room forever); a ``poll()`` that served reports without waking the sends waiting for room;
the delivery thread dying inside ``poll()`` (served reports dropped, a death during ``close()``
ignored); ``close()`` while sends wait for room (a send queued after the thread stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from producers._kafka_batch import KafkaBatchAcks
from producers.kafka import KafkaProducer, KafkaProducerConfig
from shardline.errormap import from_kafka_error
from shardline.errors import (
    BackgroundTaskError,
    ClosedError,
    DeliveryError,
    FatalKafkaError,
    MessageTooLargeError,
    ShardlineError,
)
from shardline.records import KafkaAck
from tests.program_watchdog import watch as watchdog
from tests.unit.kafka.fake_kafka_producer import FakeMessage, FakeProducer, serve_reports

TOPIC = "telemetry"
PUMP_THREAD = "shardline-kafka-delivery"
POLL_TIMEOUT = 0.01
"""The producer's ``poll_timeout_s``: how long its idle delivery thread waits in one ``poll()``."""
STUCK_FOR = 0.02
"""Seconds a message the broker never answers waits before the fake times it out."""
BOUND = 5.0
"""Seconds one whole program may take; examples take milliseconds."""
TICK = 0.015
QUIET_TICKS = 20
"""Watchdog ticks with no progress at all (no step, message, report or outcome): a hang."""

KEYS: tuple[str | None, ...] = ("a", "b", "c", "d", None)
PARTITION_OF: dict[str | None, int] = {"a": 0, "b": 1, "c": 2, "d": 0, None: 1}
"""A fixed partitioner (the fake's own hashes str keys, which varies between processes):
"a" and "d" share a partition, keyless messages share one with "b"."""
PARTITIONS = 3

TIMEOUT_CODES = (KafkaError._MSG_TIMED_OUT, KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT)
"""Codes the producer reports as a retriable DeliveryError (the message was not delivered)."""
ERROR_CODES = (
    KafkaError._MSG_TIMED_OUT,
    KafkaError.NOT_ENOUGH_REPLICAS,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
)
"""Retriable and permanent delivery errors a report may carry."""

Fate = tuple[Any, ...]
"""("error", code, fatal), ("stuck",) or ("unreadable",): what the broker does with one message
(default: ack).  An unreadable message is acknowledged, but its report raises when read."""
Step = tuple[Any, ...]
"""("send", key, wait) | ("send_many", keys, wait) | ("burst", key, count) | ("await", call) |
("flush",) | ("pause", turns) | ("deliver", count, partition or None) | ("broker", running) |
("thread", paused).

``wait``: the program awaits the call's return (its messages queued) before its next step;
otherwise the call runs meanwhile.  A burst starts ``count`` sends of one key at once.
"await" awaits the future of an earlier call (its index modulo the calls so far), as callers
do.  A paused delivery thread serves nothing (as when it is not scheduled)."""


@dataclass(frozen=True)
class Program:
    capacity: int
    """The fake's local queue, in messages (librdkafka's ``queue.buffering.max.messages``)."""
    partition_order: tuple[int, ...]
    """The order in which the broker answers partitions (FIFO within each)."""
    running: bool
    """Whether the broker answers at every ``poll()`` from the start, or only when told."""
    fates: dict[int, Fate]
    """message number -> what happens to it; messages not named are acknowledged."""
    heavy: frozenset[int]
    """Messages too large for the room a non-empty queue has left (its byte limit): refused
    while it holds any message, accepted once it is empty.  Lighter messages sent after one
    still fit: only the FIFO wait keeps them from overtaking it."""
    too_big: frozenset[int]
    """Messages larger than the whole local queue: every ``produce()`` of them is refused."""
    poll_error: tuple[int, bool] | None
    """(n, after): the n-th ``poll()`` with reports to serve (either thread) raises RuntimeError,
    before serving them (they wait for the next poll) or after."""
    death: tuple[int, bool] | None
    """(n, after): the delivery thread's n-th ``poll()`` with reports to serve raises SystemExit
    (a ``sys.exit()`` in a client callback), before serving them or after."""
    steps: list[Step]
    join_before_close: bool
    """Wait until every call returned before ``close()``; else close while some still wait."""
    close_at_once: bool
    """``close()`` called from the program's own task, the broker running; otherwise from a
    task of its own, and a stalled broker starts answering only once ``close()`` began."""
    close_timeout: float | None


@st.composite
def programs(
    draw: st.DrawFn,
    *,
    too_big: bool = False,
    wakeups: bool = False,
    death: bool = False,
    close_while_waiting: bool = False,
) -> Program:
    """A program small enough to run in milliseconds, with faults at drawn places.

    ``too_big``: one or two messages never fit the local queue.  ``wakeups``: a ``poll()`` may
    raise after serving its reports, the delivery thread may be kept from polling for a while
    (the loop's own polls then serve reports) and bursts of sends reach the every-32nd-send
    inline poll.  ``death``: the delivery thread dies at a drawn poll.  ``close_while_waiting``:
    ``close()`` may be called while sends still wait for room."""
    allow_fatal = draw(st.sampled_from([False, False, False, True]), label="fatal errors")
    error = st.tuples(st.just("error"), st.sampled_from(ERROR_CODES), st.just(False))
    fate_choices = [error, st.tuples(st.just("stuck")), st.tuples(st.just("unreadable"))]
    if allow_fatal:
        fate_choices.append(st.tuples(st.just("error"), st.just(KafkaError._FATAL), st.just(True)))
    fates = draw(
        st.dictionaries(st.integers(min_value=0, max_value=20), st.one_of(fate_choices), max_size=8),
        label="fates",
    )
    key = st.one_of(st.just("a"), st.sampled_from(KEYS))  # "a" often: one key's order is tested
    wait = st.sampled_from([False, False, True])  # mostly overlapping calls: they contend for room
    # Bursts reach send()'s every-32nd-send inline poll; without ``wakeups`` only in programs
    # without send_many (the property of that poll waking a partly reported batch is below).
    bursts = wakeups or draw(st.sampled_from([False, False, True]), label="bursts")
    step = st.one_of(
        st.tuples(st.just("send"), key, wait),
        *(
            []
            if bursts and not wakeups
            else [st.tuples(st.just("send_many"), st.lists(key, min_size=1, max_size=6).map(tuple), wait)]
        ),
        st.tuples(st.just("flush")),
        st.tuples(st.just("pause"), st.integers(min_value=1, max_value=3)),
        st.tuples(
            st.just("deliver"),
            st.integers(min_value=1, max_value=4),
            st.one_of(st.none(), st.integers(min_value=0, max_value=PARTITIONS - 1)),
        ),
        st.tuples(st.just("broker"), st.booleans()),
        st.tuples(st.just("await"), st.integers(min_value=0, max_value=9)),
        *([st.tuples(st.just("burst"), key, st.sampled_from([8, 32]))] if bursts else []),
        *([st.tuples(st.just("thread"), st.booleans())] if wakeups else []),
    )
    fault = st.tuples(st.integers(min_value=1, max_value=6), st.booleans())
    poll_error = st.tuples(
        st.integers(min_value=1, max_value=6), st.booleans() if wakeups else st.just(False)
    )
    return Program(
        capacity=draw(st.sampled_from([1, 1, 2, 3, 5, 1000]), label="capacity"),
        partition_order=tuple(draw(st.permutations(range(PARTITIONS)), label="partition order")),
        running=draw(st.sampled_from([False, False, True]), label="broker running at start"),
        fates=fates,
        heavy=draw(st.frozensets(st.integers(min_value=0, max_value=15), max_size=4), label="heavy"),
        too_big=draw(
            st.frozensets(st.integers(min_value=0, max_value=20), min_size=1, max_size=2)
            if too_big
            else st.just(frozenset()),
            label="too big",
        ),
        poll_error=draw(st.one_of(st.none(), poll_error), label="poll error"),
        death=draw(fault if death else st.none(), label="death"),
        steps=draw(st.lists(step, min_size=2, max_size=10), label="steps"),
        join_before_close=draw(st.booleans(), label="join before close") if close_while_waiting else True,
        close_at_once=draw(st.booleans(), label="close at once"),
        close_timeout=draw(st.sampled_from([None, None, 0.0, 0.005, 0.05]), label="close timeout"),
    )


def value_of(number: int) -> bytes:
    return b"m%03d" % number


def number_of(value: bytes) -> int:
    return int(value[1:])


Report = tuple[KafkaError | None, int, int]
"""What the fake reported for one message: (error or None, partition, offset)."""


class ScriptedBroker(FakeProducer):
    """librdkafka and the broker as a :class:`Program` scripts them.

    A running broker answers every queued message at each ``poll()`` (and wakes a ``poll()``
    waiting when a message is produced, as a broker's answer would); a stalled one answers
    only :meth:`deliver`.  Stuck messages are never answered: they time out after
    :data:`STUCK_FOR` seconds, or ``purge()`` fails them.  Each report is recorded when it is
    made, before the ``poll()`` serving it runs the message's callback.
    """

    def __init__(self, program: Program) -> None:
        super().__init__(capacity=program.capacity, partitions=PARTITIONS)
        self.program = program
        self.running = program.running
        self.thread_paused = False
        self.refused_heavy = 0
        self.serving_polls = 0
        self.thread_serving_polls = 0
        self.poll_errors = 0
        self.died = False
        self.reports: dict[bytes, list[Report]] = {}
        self.unreadable: set[bytes] = set()
        """Messages acknowledged with a report that raises when the producer reads it."""
        self.fatal_reported = False
        self._stuck_until: dict[bytes, float] = {}

    def _check_room(self, value: bytes, held: int) -> None:
        if number_of(value) in self.program.too_big:
            raise BufferError("Local: Queue full")
        if number_of(value) in self.program.heavy and held:
            self.refused_heavy += 1
            raise BufferError("Local: Queue full")
        super()._check_room(value, held)

    def _partition_of(self, key: Any) -> int:
        return PARTITION_OF[key]

    def _after_queued(self, msg: FakeMessage) -> None:
        assert not msg.kwargs, "the program sends plain messages"
        if self.program.fates.get(number_of(msg.value_bytes), ("ack",))[0] == "stuck":
            self._stuck_until[msg.value_bytes] = time.monotonic() + STUCK_FOR
        if self.running:
            self._cond.notify_all()

    def run(self) -> None:
        """The broker answers, and the delivery thread polls, from now on (steps that wait for
        the producer need both)."""
        with self._cond:
            self.running = True
            self.thread_paused = False
            self._cond.notify_all()

    def pause_thread(self, paused: bool) -> None:
        with self._cond:
            self.thread_paused = paused
            self._cond.notify_all()

    def stall(self) -> None:
        with self._cond:
            self.running = False

    def deliver(self, count: int, partition: int | None) -> None:
        """Answer the oldest ``count`` answerable messages (of ``partition``) now."""
        with self._cond:
            self._answer(count, partition)
            self._cond.notify_all()

    def _report(self, msg: FakeMessage, callback: Any, err: KafkaError | None) -> None:
        if err is None:
            msg.offset_value = self._next_offset[msg.partition_id]
            self._next_offset[msg.partition_id] += 1
            if self.program.fates.get(number_of(msg.value_bytes), ("ack",))[0] == "unreadable":
                msg.unreadable = TypeError("report function bug")
                self.unreadable.add(msg.value_bytes)
        elif err.fatal():
            self.fatal_reported = True
        self.reports.setdefault(msg.value_bytes, []).append((err, msg.partition_id, msg.offset_value))
        self._ready.append((msg, callback, err))

    def _answer(self, count: int | None, partition: int | None) -> None:
        """Answer queued messages (lock held): FIFO within a partition, partitions in the drawn
        order; stuck messages are skipped."""
        order = self.program.partition_order if partition is None else (partition,)
        answerable = [
            item
            for part in order
            for item in self._queued
            if item[0].partition_id == part and item[0].value_bytes not in self._stuck_until
        ]
        taken = answerable if count is None else answerable[:count]
        ids = {id(item) for item in taken}
        self._queued = [item for item in self._queued if id(item) not in ids]
        for msg, callback in taken:
            fate = self.program.fates.get(number_of(msg.value_bytes), ("ack",))
            error = KafkaError(fate[1], fatal=fate[2]) if fate[0] == "error" else None
            self._report(msg, callback, error)

    def _expire(self) -> None:
        """Stuck messages past their time fail with _MSG_TIMED_OUT (lock held)."""
        now = time.monotonic()
        expired = [
            item for item in self._queued if self._stuck_until.get(item[0].value_bytes, now + 1) <= now
        ]
        for item in expired:
            self._queued.remove(item)
            self._report(item[0], item[1], KafkaError(KafkaError._MSG_TIMED_OUT))

    def _advance(self) -> None:
        if self.running:
            self._answer(None, None)
        self._expire()

    def _wait(self, timeout: float) -> float:
        waits = [until - time.monotonic() for until in self._stuck_until.values()]
        return max(0.0, min([timeout, *waits]))

    def poll(self, timeout: float = 0) -> int:
        on_thread = threading.current_thread().name == PUMP_THREAD
        fault: BaseException | None = None
        after = False
        with self._cond:
            if on_thread and self.thread_paused:
                self._cond.wait(timeout)  # not scheduled: serves nothing this time
                return 0
            self._advance()
            if not self._ready and timeout > 0:
                self._cond.wait(self._wait(timeout))
                if on_thread and self.thread_paused:
                    return 0
                self._advance()
            if not self._ready:
                return 0
            self.serving_polls += 1
            if self.program.poll_error is not None and self.program.poll_error[0] == self.serving_polls:
                fault, after = RuntimeError("error_cb raised"), self.program.poll_error[1]
                self.poll_errors += 1
            if on_thread:
                self.thread_serving_polls += 1
                if self.program.death is not None and self.program.death[0] == self.thread_serving_polls:
                    fault, after = SystemExit(3), self.program.death[1]
                    self.died = True
            if fault is not None and not after:
                raise fault  # its reports wait for the next poll
            ready, self._ready = self._ready, []
        try:
            serve_reports(ready, self._requeue)
        except BaseException:
            # A report raised: the poll ends there (the rest wait), before the scripted fault.
            if fault is not None:
                self.poll_errors -= isinstance(fault, RuntimeError)
                self.died = self.died and not isinstance(fault, SystemExit)
            raise
        if fault is not None:
            raise fault
        return len(ready)

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        with self._cond:
            self.purged = True
            for msg, callback in self._queued:
                self._report(msg, callback, KafkaError(KafkaError._PURGE_QUEUE))
            self._queued = []
            self._cond.notify_all()


class CountingObserver:
    """Sums the producer's metric events."""

    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()

    def on_event(self, name: str, value: float = 1, **dimensions: Any) -> None:
        self.totals[name] += int(value)


@dataclass
class Call:
    """One ``send`` or ``send_many`` call of the program."""

    numbers: list[int]
    """Its messages' numbers, which are their call order."""
    keys: list[str | None]
    single: bool
    task: asyncio.Task[Any]
    done_before_close: bool = False


@dataclass
class Run:
    producer: KafkaProducer
    calls: list[Call] = field(default_factory=list)
    steps_done: int = 0
    flushes: int = 0
    closing: bool = False
    closed: bool = False
    failures: list[BaseException] = field(default_factory=list)
    """BackgroundTaskErrors that flush() or close() raised."""

    def futures(self) -> list[asyncio.Future[Any]]:
        return [call.task.result() for call in self.calls if call.task.done() and not call.task.exception()]


async def play(program: Program, fake: ScriptedBroker, observer: CountingObserver) -> Run:
    """Run the program's steps, then close; a hang fails the example (see :func:`watch`)."""
    config = KafkaProducerConfig(poll_timeout_s=POLL_TIMEOUT)
    producer = KafkaProducer(TOPIC, producer=fake, config=config, observer=observer)
    run = Run(producer)
    numbers = iter(range(1_000))

    async def returned(call: Call) -> None:
        fake.run()  # the program waits for the producer: the broker must answer meanwhile
        await asyncio.wait({call.task})

    async def ended(what: str, operation: Callable[[], Any]) -> None:
        """flush() and close() resolve every future returned before them (docs/kafka.md), unless
        the delivery thread died: then they raise and its pending messages fail (checked at
        the end, after a bounded wait)."""
        before = run.futures()
        try:
            await operation()
        except BackgroundTaskError as exc:
            assert fake.died, f"{what} raised {exc!r} with the delivery thread alive"
            run.failures.append(exc)
            return
        unresolved = [future for future in before if not future.done()]
        assert not unresolved, f"{what} returned with {len(unresolved)} earlier futures unresolved"

    async def steps() -> None:
        try:
            for step in program.steps:
                kind = step[0]
                if kind in ("send", "send_many"):
                    call_keys = [step[1]] if kind == "send" else list(step[1])
                    batch = [next(numbers) for _ in call_keys]
                    task: asyncio.Task[Any]
                    if kind == "send":
                        task = asyncio.create_task(producer.send(value_of(batch[0]), step[1]))
                    else:
                        task = asyncio.create_task(
                            producer.send_many([value_of(n) for n in batch], call_keys)
                        )
                    call = Call(batch, call_keys, kind == "send", task)
                    run.calls.append(call)
                    if step[2]:
                        await returned(call)
                elif kind == "flush":
                    fake.run()
                    await ended("flush()", producer.flush)
                    run.flushes += 1
                elif kind == "pause":
                    for _ in range(step[1]):
                        await asyncio.sleep(0)  # let started calls and handed-over reports run
                elif kind == "deliver":
                    fake.deliver(step[1], step[2])
                elif kind == "await" and run.calls:
                    call = run.calls[step[1] % len(run.calls)]
                    await returned(call)
                    if not call.task.exception():
                        with contextlib.suppress(ShardlineError):
                            await call.task.result()  # directly: woken by the report itself
                elif kind == "thread":
                    fake.pause_thread(step[1])
                elif kind == "burst":
                    for _ in range(step[2]):
                        number = next(numbers)
                        task = asyncio.create_task(producer.send(value_of(number), step[1]))
                        run.calls.append(Call([number], [step[1]], True, task))
                elif step[1]:
                    fake.run()
                else:
                    fake.stall()
                run.steps_done += 1
            if program.join_before_close and not all(call.task.done() for call in run.calls):
                fake.run()
                await asyncio.wait({call.task for call in run.calls})
            for call in run.calls:
                call.done_before_close = call.task.done()
            run.closing = True
            if program.close_at_once:
                fake.run()
                await ended("close()", lambda: producer.close(program.close_timeout))
            else:
                closer = asyncio.create_task(ended("close()", lambda: producer.close(program.close_timeout)))
                await asyncio.sleep(0)  # close() begins first (one turn of the loop, in order) ...
                fake.run()  # ... then a stalled broker answers, while close() waits
                await closer
            run.closed = True
            # Calls still waiting for room when close() began, and every future: each must end.
            pending = {call.task for call in run.calls if not call.task.done()}
            if pending:
                await asyncio.wait(pending)
            waiting = {future for future in run.futures() if not future.done()}
            if waiting:
                await asyncio.wait(waiting)
        finally:
            if not run.closed:
                with contextlib.suppress(ShardlineError):  # keep the step's own failure
                    await producer.close()

    def progress() -> tuple[object, ...]:
        with fake._cond:  # the delivery thread adds reports under it: read them still
            reported = sum(len(reports) for reports in fake.reports.values())
        return (
            run.steps_done,
            run.flushes,
            run.closing,
            run.closed,
            len(fake.produced),
            reported,
            sum(call.task.done() for call in run.calls),
            sum(future.done() for future in run.futures()),
        )

    def where() -> str:
        waiting = sum(not call.task.done() for call in run.calls)
        unresolved = sum(not future.done() for future in run.futures())
        return (
            f"after step {run.steps_done} (closing={run.closing}, closed={run.closed}): {waiting} calls"
            f" not returned, {unresolved} futures unresolved, {len(fake)} messages in the fake, {producer!r}"
        )

    try:
        await watch(asyncio.create_task(steps()), progress, where)
    finally:
        pump = producer._pump
        if pump is not None and pump.alive:  # a hung close() was cancelled: stop the thread here
            pump.stop()
            await asyncio.to_thread(pump.join, 1.0)
    return run


async def watch(task: asyncio.Task[None], progress: Callable[[], object], where: Callable[[], str]) -> None:
    """Wait for ``task``; fail when nothing moves for QUIET_TICKS ticks, or past BOUND seconds.

    Healthy programs move every few milliseconds (the delivery thread polls every
    POLL_TIMEOUT, stuck messages time out after STUCK_FOR), so a quiet spell of
    QUIET_TICKS * TICK seconds is a hang; failing after it keeps shrinking a hang affordable.
    A hung task is cancelled until it ends.
    """
    await watchdog(task, progress, where, tick=TICK, quiet_ticks=QUIET_TICKS, bound=BOUND, cancel_rounds=20)


def expected_error(err: KafkaError) -> type[ShardlineError]:
    """The error class a report carrying ``err`` must fail its message with."""
    if err.code() in TIMEOUT_CODES:
        return DeliveryError
    if err.fatal():
        return FatalKafkaError
    return type(from_kafka_error(err))


class Oracle:
    """Checks each call's outcome against what the fake did with its messages."""

    def __init__(self, program: Program, fake: ScriptedBroker, run: Run) -> None:
        self.program = program
        self.fake = fake
        self.run = run
        self.produced = Counter(msg.value_bytes for msg in fake.produced)
        self.acked: dict[int, KafkaAck] = {}
        self.failed = 0
        self.unreadable = 0
        """Outcomes of reports that raised: each was surfaced once as a callback error."""

    def not_queued(self, call: Call, position: int, error: BaseException, what: str) -> None:
        """``error`` says message ``position`` of ``call`` (and those after it) was never
        handed to the client: the plan must explain it."""
        assert isinstance(error, ShardlineError), f"{what} failed with {error!r}, not a Shardline error"
        if isinstance(error, ClosedError):
            assert not call.done_before_close, f"{what}: ClosedError although it returned before close()"
        elif isinstance(error, FatalKafkaError):
            assert self.fake.fatal_reported, f"{what}: {error!r} but no fatal error was reported"
        elif isinstance(error, BackgroundTaskError):
            assert self.fake.died, f"{what}: {error!r} but the delivery thread did not die"
        elif isinstance(error, MessageTooLargeError) and "local queue" in str(error):
            # a batch stops at a message that cannot fit: the rest fail with it
            too_big = [n for n in call.numbers[: position + 1] if n in self.program.too_big]
            assert too_big, f"{what}: {error!r} but nothing up to it is larger than the queue"
        else:
            raise AssertionError(f"{what} not queued, with {error!r}, which the plan does not explain")

    def outcome(self, call: Call, position: int, outcome: KafkaAck | BaseException, what: str) -> None:
        number = call.numbers[position]
        value = value_of(number)
        if not self.produced[value]:
            assert not call.single, f"{what} returned a future but was never produced"
            assert isinstance(outcome, BaseException), f"{what} acked as {outcome!r} but never produced"
            self.not_queued(call, position, outcome, what)
            self.failed += 1
            return
        reports = self.fake.reports.get(value, [])
        assert len(reports) == 1, f"{what} produced, but the fake reported it {len(reports)} times"
        err, partition, offset = reports[0]
        if err is None and value in self.fake.unreadable:
            assert type(outcome) is DeliveryError, f"{what}: its report raised, but it ended with {outcome!r}"
            assert outcome.retriable and isinstance(outcome.__cause__, TypeError), f"{what}: {outcome!r}"
            self.failed += 1
            self.unreadable += 1
        elif err is None:
            assert type(outcome) is KafkaAck, f"{what} was acknowledged but ended with {outcome!r}"
            assert outcome == KafkaAck(TOPIC, partition, offset), (
                f"{what} acked as {outcome!r}; the fake put it at partition {partition}, offset {offset}"
            )
            self.acked[number] = outcome
        else:
            expected = expected_error(err)
            assert type(outcome) is expected, f"{what}: reported {err.name()}, ended with {outcome!r}"
            if expected is DeliveryError:
                assert outcome.retriable, f"{what}: {outcome!r} should be retriable"
            self.failed += 1

    def check_call(self, call: Call) -> None:
        task = call.task
        what = f"{'send' if call.single else 'send_many'} of {call.numbers}"
        assert task.done() and not task.cancelled(), f"{what} never returned"
        raised = task.exception()
        if raised is not None:
            self.not_queued(call, 0, raised, what)
            for number in call.numbers:
                assert not self.produced[value_of(number)], f"{what} raised {raised!r} but was produced"
            return
        future = task.result()
        assert future.done() and not future.cancelled(), f"{what}: its future is unresolved after close()"
        if call.single:
            error = future.exception()
            self.outcome(call, 0, error if error is not None else future.result(), what)
            return
        acks = future.result()
        assert isinstance(acks, KafkaBatchAcks) and acks.topic == TOPIC
        assert len(acks) == len(call.numbers), f"{what}: {len(acks)} acks for {len(call.numbers)} messages"
        assert set(acks.failed) <= set(range(len(call.numbers))), f"{what}: failed {sorted(acks.failed)}"
        ends: dict[int, int] = {}
        for position in range(len(call.numbers)):
            failure = acks.failed.get(position)
            if failure is not None:
                with pytest.raises(ShardlineError) as caught:
                    acks[position]
                assert caught.value is failure, f"{what}: position {position} raises another error"
            outcome: KafkaAck | BaseException = failure if failure is not None else acks[position]
            self.outcome(call, position, outcome, f"message {position} of {what}")
            if isinstance(outcome, KafkaAck):
                ends[outcome.partition] = max(ends.get(outcome.partition, 0), outcome.offset + 1)
        assert acks.end_offsets() == ends, f"{what}: end_offsets() {acks.end_offsets()}, acks say {ends}"

    def check(self, observer: CountingObserver) -> None:
        duplicates = {value: count for value, count in self.produced.items() if count > 1}
        assert not duplicates, f"produced more than once: {duplicates}"
        for call in self.run.calls:
            self.check_call(call)
        # Every produced message had exactly one outcome above; the counters agree with them.
        delivered, failed = observer.totals["records_delivered"], observer.totals["records_failed"]
        assert delivered == len(self.acked), f"records_delivered {delivered} for {len(self.acked)} acks"
        assert failed == self.failed, f"records_failed {failed} for {self.failed} failed messages"
        surfaced = observer.totals["kafka_callback_errors"]
        assert self.unreadable <= surfaced <= self.unreadable + self.fake.poll_errors, (
            f"kafka_callback_errors {surfaced} for {self.unreadable} reports that raised"
            f" and {self.fake.poll_errors} poll() errors"
        )
        assert self.run.producer.in_flight == 0, f"{self.run.producer!r} after every outcome"
        for key in KEYS:
            mine = sorted(
                number
                for call in self.run.calls
                for number, call_key in zip(call.numbers, call.keys, strict=True)
                if call_key == key and number in self.acked
            )
            places = [(self.acked[number].partition, self.acked[number].offset) for number in mine]
            assert all(partition == PARTITION_OF[key] for partition, _ in places), (
                f"key {key!r} acked in other partitions: {places}"
            )
            offsets = [offset for _, offset in places]
            assert offsets == sorted(offsets), (
                f"key {key!r} out of call order: {list(zip(mine, offsets, strict=True))}"
            )


def pump_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == PUMP_THREAD and thread.is_alive()}


def run_and_check(program: Program) -> None:
    before = pump_threads()
    fake = ScriptedBroker(program)
    observer = CountingObserver()
    try:
        run = asyncio.run(play(program, fake, observer))
    finally:
        leaked = pump_threads() - before
        assert not leaked, f"delivery threads left running: {leaked}"
    Oracle(program, fake, run).check(observer)
    # what the examples exercised (pytest --hypothesis-show-statistics)
    event("queue full" if observer.totals["kafka_queue_full"] else "queue never full")
    errors = {type(error).__name__ for reports in fake.reports.values() for error, _, _ in reports if error}
    event("delivery errors" if errors else "no delivery error")
    if fake.fatal_reported:
        event("a fatal error")
    if fake.refused_heavy:
        event("a heavy message refused")
    if fake.poll_errors:
        event("a poll() raised")
    if fake.died:
        event("the delivery thread died")
    if fake.purged:
        event("close(timeout) purged")
    if fake.unreadable:
        event("a report raised")
    if any(step[0] == "burst" for step in program.steps):
        event("a burst of sends (inline polls)")
    if not all(call.done_before_close for call in run.calls):
        event("closed while a call was waiting")


def _pinned(**changes: Any) -> Program:
    """A program of the pinned examples: no faults but those named."""
    base: dict[str, Any] = {
        "capacity": 1000,
        "partition_order": (0, 1, 2),
        "running": False,
        "fates": {},
        "heavy": frozenset(),
        "too_big": frozenset(),
        "poll_error": None,
        "death": None,
        "steps": [],
        "join_before_close": True,
        "close_at_once": False,
        "close_timeout": None,
    }
    return Program(**{**base, **changes})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(  # reports that raise: m1 of a batch, m3 of a burst of sends (their polls serve it)
    program=_pinned(
        running=True,
        fates={1: ("unreadable",), 3: ("unreadable",)},
        steps=[("send_many", ("a", "a", "b"), True), ("await", 0), ("burst", "a", 32), ("flush",)],
    )
)
@example(  # m1 is refused while m0 is queued; m2 fits, but must not overtake m1 (key "a")
    program=_pinned(
        capacity=3,
        heavy=frozenset({1}),
        steps=[("send", "a", False), ("send", "a", False), ("send", "a", False), ("pause", 1)],
    )
)
@given(program=programs())
def test_every_accepted_message_ends_exactly_once_and_nothing_hangs(program: Program) -> None:
    """The producer's core promise under back-pressure, delivery errors and client failures:
    a caller can trust each future (an ack names where the message is, an error means the
    report said so), a batch accounts for every message once, per-key order holds, and
    close() leaves nothing pending and no thread behind."""
    run_and_check(program)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(program=_pinned(too_big=frozenset({1}), steps=[("send_many", ("a", "a"), False)]))
@given(program=programs(too_big=True))
def test_a_message_larger_than_the_queue_fails_and_nothing_hangs(program: Program) -> None:
    """A message larger than the whole local queue (``queue_max_kbytes``) is refused at every
    ``produce()``; once nothing is in flight no report can make room, so the producer fails it
    with MessageTooLargeError ("does not fit librdkafka's local queue"), as send() already
    does.  In a batch it must end that way too (with the rest of the batch, which stops there)
    instead of waiting for room forever, and nobody else's outcome may change."""
    run_and_check(program)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(  # (1) the thread serves m0 of [m0, m1] (m1 waits for room), then its callback raises
    program=_pinned(
        capacity=1,
        poll_error=(1, True),
        steps=[("send_many", ("a", "a"), False), ("pause", 1), ("broker", True)],
    )
)
@example(  # (2) the 32nd send of a burst polls inline and serves m0 while the thread is not scheduled
    program=_pinned(
        capacity=1,
        steps=[
            ("send_many", ("a", "a"), False),
            ("pause", 1),
            ("thread", True),
            ("deliver", 1, None),
            ("burst", "b", 32),
            ("pause", 1),
        ],
    )
)
@given(program=programs(wakeups=True))
def test_reports_served_anywhere_wake_the_sends_waiting_for_room(program: Program) -> None:
    """docs/kafka.md: a full queue makes send and send_many "wait for deliveries to make room"
    and "an exception raised by a client callback inside [poll()] does not stop delivery
    reports".  Whichever thread serves a report, and whether or not a callback raised in the
    same poll(), the room it makes must reach whoever waits for it."""
    run_and_check(program)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(  # (1) the thread serves the only report, then dies: flush() raises, the future hangs
    program=_pinned(death=(1, True), steps=[("send", "a", False), ("pause", 1), ("flush",)])
)
@example(  # (2) the thread dies before serving, during close(): close() waits forever
    program=_pinned(death=(1, False), steps=[("send", "a", False), ("pause", 1)])
)
@example(  # (3) the thread dies before serving; a callback raises in the purge's poll(0)
    program=_pinned(
        death=(1, False), poll_error=(2, False), steps=[("send", "a", False), ("pause", 1), ("flush",)]
    )
)
@given(program=programs(death=True))
def test_a_dying_delivery_thread_still_resolves_every_future(program: Program) -> None:
    """docs/kafka.md: "Should the delivery thread die anyway, pending messages are purged and
    fail with DeliveryError caused by a BackgroundTaskError, which flush(), close() and send()
    raise."  So a death (a ``sys.exit()`` in a client callback) must still end every future,
    within a bounded wait, with its report's outcome or that DeliveryError."""
    run_and_check(program)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(  # m0 acked while m1 waits for room; the caller awaiting m0 closes before m1's send resumes
    program=_pinned(
        capacity=1,
        join_before_close=False,
        close_at_once=True,
        steps=[("send", "d", False), ("send", "d", False), ("pause", 1), ("await", 0)],
    )
)
@given(program=programs(close_while_waiting=True))
def test_close_while_sends_wait_for_room_leaves_nothing_unresolved(program: Program) -> None:
    """docs/kafka.md: close() "flushes and stops the delivery thread", "so every message is
    delivered or reported", and later sends raise ClosedError.  A send still waiting for room
    when close() is called must therefore end one way or the other: queued and reported, or
    refused with ClosedError; never queued after the thread stopped."""
    run_and_check(program)
