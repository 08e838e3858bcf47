"""Drain-rate admission: a Kinesis producer fed far more than its endpoint delivers within the TTL.

The endpoint double serves PutRecords one call at a time, each taking its bytes divided by a
set rate on a fake clock the producer reads: time passes only when the endpoint works, so
everything below is deterministic and independent of the machine's speed.  With
``admission="caps"`` the records fed at once are all accepted and most fail with
DeliveryError when their TTL runs out; with ``admission="drain-rate"`` ``send()`` waits
instead and every record is delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from producers import KinesisProducer
from producers.config import ProducerConfig
from producers.drain import DrainRate
from shardline import metrics_events as events
from shardline.errors import BufferFullError, ConfigurationError, DeliveryError
from tests.unit.producers.fake_kinesis import FakeKinesis

WAIT = 20.0  # seconds (real): the bound on every wait below
RATE = 10_000.0  # bytes per fake second the endpoint delivers
TTL = 10.0  # fake seconds: the endpoint delivers 100 kB within a record's TTL
PAYLOAD = b"x" * 1000  # every record is this long (the feeder numbers each one)
REQUEST_BYTES = 10_100  # about ten records a request (a second of the endpoint's work)
OPTIONS: dict[str, Any] = {
    "aggregate": False,
    "linger": 0.0,
    "rate_limit_percent": None,
    "record_ttl": TTL,
    "max_batch_bytes": REQUEST_BYTES,
    "initial_backoff": 0.0,
    "max_backoff": 0.0,
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class DrainingKinesis(FakeKinesis):
    """Serves PutRecords calls one at a time, in arrival order, at ``rate`` bytes per fake second.

    Serving a call moves the clock on by its bytes / rate, answers it, and waits until the
    producer has taken the answer before serving the next one.
    """

    def __init__(self, clock: FakeClock, rate: float) -> None:
        super().__init__()
        self.clock = clock
        self.rate = rate
        self._calls: asyncio.Queue[tuple[int, asyncio.Future[None], asyncio.Future[None]]] = asyncio.Queue()

    async def put_records(self, **kwargs: Any) -> dict[str, Any]:
        nbytes = sum(len(e["Data"]) + len(e["PartitionKey"]) for e in kwargs["Records"])
        loop = asyncio.get_running_loop()
        turn, answered = loop.create_future(), loop.create_future()
        self._calls.put_nowait((nbytes, turn, answered))
        try:
            await turn
            return await super().put_records(**kwargs)
        finally:
            answered.set_result(None)

    async def serve(self) -> None:
        while True:
            nbytes, turn, answered = await self._calls.get()
            self.clock.now += nbytes / self.rate
            turn.set_result(None)
            await answered


@contextlib.asynccontextmanager
async def draining_producer(fake: DrainingKinesis, **options: Any) -> AsyncIterator[KinesisProducer]:
    """A started producer on ``fake`` with the endpoint serving; closing is bounded."""
    serving = asyncio.create_task(fake.serve())
    producer = KinesisProducer("s", client=fake, clock=fake.clock, **{**OPTIONS, **options})
    await producer.start()
    try:
        yield producer
    finally:
        try:
            await producer.close(timeout=WAIT)
        finally:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving


class Feeder:
    """Sends records as fast as ``send()`` returns, timing its waits on the fake clock."""

    def __init__(self, producer: KinesisProducer, clock: FakeClock) -> None:
        self.producer = producer
        self.clock = clock
        self.futures: list[asyncio.Future[Any]] = []
        self.waited = 0.0  # fake seconds spent inside send()
        self.most_buffered_when_limited = 0  # bytes buffered, whenever admission was below the cap

    async def feed(self, count: int) -> None:
        producer = self.producer
        cap = producer.config.record_buffer_bytes
        for i in range(count):
            before = self.clock.now
            data = b"%08d" % len(self.futures) + PAYLOAD[8:]
            self.futures.append(await producer.send(data, partition_key=f"k{i % 40}"))
            self.waited += self.clock.now - before
            if producer.admission_bytes < cap:
                self.most_buffered_when_limited = max(self.most_buffered_when_limited, producer.buffered[1])

    async def outcomes(self) -> tuple[int, int]:
        """(delivered, failed with DeliveryError) once every future is resolved."""
        results = await asyncio.wait_for(asyncio.gather(*self.futures, return_exceptions=True), WAIT)
        others = [r for r in results if isinstance(r, BaseException) and not isinstance(r, DeliveryError)]
        assert not others, others[:3]
        failed = sum(isinstance(r, DeliveryError) for r in results)
        return len(results) - failed, failed


class RecordingObserver:
    """Keeps every metrics event (name, value)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.events.append((name, value))

    def values(self, name: str) -> list[float]:
        return [value for event, value in self.events if event == name]


async def test_with_caps_only_records_fed_at_once_expire_at_a_slow_endpoint() -> None:
    clock = FakeClock()
    fake = DrainingKinesis(clock, RATE)
    observer = RecordingObserver()
    async with draining_producer(fake, admission="caps", observer=observer) as producer:
        feeder = Feeder(producer, clock)
        await asyncio.wait_for(feeder.feed(1000), WAIT)  # 1 MB: ten times what one TTL delivers
        assert feeder.waited == 0.0  # everything was accepted at once
        delivered, failed = await feeder.outcomes()
    assert failed > 800  # the problem: accepted, then failed after their TTL
    assert delivered + failed == 1000
    assert not observer.values(events.SEND_WAITS) and not observer.values(events.ADMISSION_BYTES)


async def test_drain_rate_admission_turns_the_ttl_failures_into_waiting() -> None:
    clock = FakeClock()
    fake = DrainingKinesis(clock, RATE)
    observer = RecordingObserver()
    async with draining_producer(fake, admission="drain-rate", observer=observer) as producer:
        feeder = Feeder(producer, clock)
        await asyncio.wait_for(feeder.feed(1000), WAIT)
        delivered, failed = await feeder.outcomes()
        rate = producer.drain_rate
        limit = producer.admission_bytes
    assert (delivered, failed) == (1000, 0)
    assert len(fake.written) == 1000
    # 1 MB at 10 kB/s: send() waited for nearly all of the 100 s the endpoint needed.
    assert feeder.waited > 80.0
    assert rate is not None and 0.9 * RATE <= rate <= 1.1 * RATE
    window = TTL * producer.config.admission_ttl_fraction
    assert 0.9 * RATE * window <= limit <= 1.1 * RATE * window
    # What was buffered stayed within what the endpoint delivers in half the TTL.
    assert feeder.most_buffered_when_limited <= 1.1 * RATE * window + len(PAYLOAD) + 3
    # Operators see the waiting and the limit: one send_waits per send() that waited, and the
    # admission_bytes gauge each time the limit moved, the last one being the limit in force.
    assert observer.values(events.SEND_WAITS)
    assert observer.values(events.ADMISSION_BYTES)[-1] == limit


@pytest.mark.parametrize("admission", ["caps", "drain-rate"])
async def test_send_many_batches_wait_too(admission: str) -> None:
    """Fifty batches of twenty records: the same one admission path as send()."""
    clock = FakeClock()
    fake = DrainingKinesis(clock, RATE)
    async with draining_producer(fake, admission=admission) as producer:
        batches = []
        waited = 0.0
        for b in range(50):
            datas = [b"%08d" % (20 * b + i) + PAYLOAD[8:] for i in range(20)]
            before = clock.now
            batches.append(await producer.send_many(datas, [f"k{i}" for i in range(20)]))
            waited += clock.now - before
        results = await asyncio.wait_for(asyncio.gather(*batches), WAIT)
    failed = sum(len(acks.failed) for acks in results)
    assert all(isinstance(error, DeliveryError) for acks in results for error in acks.failed.values())
    if admission == "caps":
        assert failed > 800 and waited == 0.0
    else:
        assert failed == 0 and waited > 80.0
        assert len(fake.written) == 1000


async def test_a_throttling_endpoint_lowers_the_rate_and_tightens_admission() -> None:
    """Every other call throttles the records it sees for the first time.

    The endpoint spends its time on those calls and delivers nothing from them.  (A record
    throttled again and again waits behind what is in flight each time; the half of the
    TTL that admission leaves free covers about one such round.)
    """
    clock = FakeClock()
    fake = DrainingKinesis(clock, RATE)
    throttled: set[bytes] = set()

    def throttle_first_tries(call: int, entry: dict[str, Any]) -> str | None:
        if call % 2 and entry["Data"] not in throttled:
            throttled.add(entry["Data"])
            return "ProvisionedThroughputExceededException"
        return None

    fake.fault = throttle_first_tries
    async with draining_producer(fake, admission="drain-rate") as producer:
        feeder = Feeder(producer, clock)
        await asyncio.wait_for(feeder.feed(600), WAIT)
        delivered, failed = await feeder.outcomes()
        rate = producer.drain_rate
        limit = producer.admission_bytes
    assert (delivered, failed) == (600, 0)
    assert len(throttled) > 100
    assert rate is not None and 0.4 * RATE <= rate <= 0.8 * RATE
    assert limit <= 0.8 * RATE * TTL * producer.config.admission_ttl_fraction


async def test_block_false_raises_before_accepting_anything_over_the_limit() -> None:
    clock = FakeClock()
    fake = DrainingKinesis(clock, RATE)
    async with draining_producer(fake, admission="drain-rate") as producer:
        feeder = Feeder(producer, clock)
        await asyncio.wait_for(feeder.feed(300), WAIT)  # the rate is measured, the limit binds
        limit = producer.admission_bytes
        assert limit < producer.config.record_buffer_bytes
        accepted = 0
        with pytest.raises(BufferFullError, match="admission limited to") as refused:
            while True:  # nothing yields here: the endpoint makes no progress meanwhile
                await producer.send(PAYLOAD, partition_key="nb", block=False)
                accepted += 1
        assert "drain rate of" in str(refused.value)
        held = producer.buffered
        assert held[1] <= limit < held[1] + len(PAYLOAD) + 2
        with pytest.raises(BufferFullError):
            await producer.send_many([PAYLOAD] * 5, ["nb"] * 5, block=False)
        assert producer.buffered == held  # nothing of the refused record or batch was taken
        delivered, failed = await feeder.outcomes()
    assert (delivered, failed) == (300, 0)
    assert len(fake.written) == 300 + accepted


async def test_a_trickle_does_not_lower_the_measured_rate() -> None:
    """One record every 10 s for 200 s: 100 B/s offered, a rate no backlog was measured at."""
    clock = FakeClock()
    fake = DrainingKinesis(clock, RATE)
    async with draining_producer(fake, admission="drain-rate") as producer:
        feeder = Feeder(producer, clock)
        await asyncio.wait_for(feeder.feed(300), WAIT)
        assert await feeder.outcomes() == (300, 0)
        measured, limit = producer.drain_rate, producer.admission_bytes
        assert measured is not None and measured > 0.9 * RATE
        for i in range(20):
            clock.now += 10.0  # idle
            ack = await asyncio.wait_for(await producer.send(PAYLOAD, partition_key=f"t{i}"), WAIT)
            assert ack.sequence_number
        assert producer.drain_rate == measured
        assert producer.admission_bytes == limit


async def test_cold_start_admits_one_request_and_the_limit_never_goes_below_it() -> None:
    clock = FakeClock()
    fake = DrainingKinesis(clock, 100.0)  # 100 B/s: half a TTL delivers 500 B, less than a record
    async with draining_producer(fake, admission="drain-rate") as producer:
        assert producer.drain_rate is None
        assert producer.admission_bytes == REQUEST_BYTES  # before any answer: one request
        # A producer holding no more than one request is not limited: ten records fit.
        futures = [await producer.send(PAYLOAD, partition_key=f"c{i}", block=False) for i in range(10)]
        with pytest.raises(BufferFullError, match="until the drain rate is measured"):
            await producer.send(PAYLOAD, partition_key="c10", block=False)
        feeder = Feeder(producer, clock)
        feeder.futures = futures
        await asyncio.wait_for(feeder.feed(20), WAIT)
        assert await feeder.outcomes() == (30, 0)
        rate = producer.drain_rate
        assert rate is not None and rate < 200.0
        assert producer.admission_bytes == REQUEST_BYTES  # measured far lower; floored


async def test_admission_loosens_when_the_endpoint_recovers() -> None:
    clock = FakeClock()
    fake = DrainingKinesis(clock, RATE)
    async with draining_producer(fake, admission="drain-rate") as producer:
        feeder = Feeder(producer, clock)
        await asyncio.wait_for(feeder.feed(200), WAIT)
        slow_limit = producer.admission_bytes
        assert slow_limit <= 1.1 * RATE * TTL * 0.5
        fake.rate = 100 * RATE  # the endpoint recovers
        await asyncio.wait_for(feeder.feed(3000), WAIT)
        assert await feeder.outcomes() == (3200, 0)
        fast_rate = producer.drain_rate
    assert fast_rate is not None and fast_rate > 30 * RATE
    assert producer.admission_bytes > 30 * slow_limit


async def test_caps_admission_is_unchanged_by_drain_measurement() -> None:
    clock = FakeClock()
    fake = DrainingKinesis(clock, RATE)
    async with draining_producer(fake, admission="caps") as producer:
        assert producer.admission_bytes == producer.config.record_buffer_bytes
        feeder = Feeder(producer, clock)
        await asyncio.wait_for(feeder.feed(50), WAIT)
        await feeder.outcomes()
        assert producer.drain_rate is None
        assert producer.admission_bytes == producer.config.record_buffer_bytes


def test_drain_rate_weights_recent_backlogged_time() -> None:
    drain = DrainRate(window=5.0, horizon=2.0, floor=1_000, ceiling=1_000_000)
    assert drain.rate is None and drain.limit() == 1_000
    for _ in range(20):
        drain.add(1_000, 0.1)  # 10 kB/s
    assert drain.rate == pytest.approx(10_000)
    assert drain.limit() == pytest.approx(50_000, rel=1e-4)
    for _ in range(50):
        drain.add(10, 0.1)  # the endpoint slows to 100 B/s: after 2.5 horizons, mostly forgotten
    assert 100 < drain.rate < 0.1 * 10_000
    for _ in range(150):
        drain.add(10, 0.1)
    assert drain.rate == pytest.approx(100, rel=0.1)
    assert drain.limit() == 1_000  # floored
    for _ in range(100):
        drain.add(100_000, 0.1)  # 1 MB/s
    assert drain.limit() == 1_000_000  # capped


def test_admission_options_are_validated() -> None:
    with pytest.raises(ConfigurationError, match="admission must be"):
        ProducerConfig(admission="guess")  # type: ignore[arg-type]
    for fraction in (0.0, 1.5):
        with pytest.raises(ConfigurationError, match="admission_ttl_fraction"):
            ProducerConfig(admission_ttl_fraction=fraction)


class WatchedDrain(DrainingKinesis):
    """Also notes the producer's buffered bytes whenever a call arrives, against the limit."""

    def __init__(self, clock: FakeClock, rate: float) -> None:
        super().__init__(clock, rate)
        self.producer: KinesisProducer | None = None
        self.most_over_limit = 0  # the largest excess of buffered bytes over the limit

    async def put_records(self, **kwargs: Any) -> dict[str, Any]:
        producer = self.producer
        if producer is not None and producer.drain_rate is not None:
            excess = producer.buffered[1] - producer.admission_bytes
            self.most_over_limit = max(self.most_over_limit, excess)
        return await super().put_records(**kwargs)


def numbered(first: int, count: int) -> list[bytes]:
    return [b"%08d" % (first + i) + PAYLOAD[8:] for i in range(count)]


async def test_one_send_many_larger_than_the_limit_is_taken_in_parts_and_nothing_expires() -> None:
    """1 MB in one call, ten times what the endpoint delivers within a TTL."""
    clock = FakeClock()
    fake = WatchedDrain(clock, RATE)
    async with draining_producer(fake, admission="drain-rate") as producer:
        fake.producer = producer
        datas = numbered(0, 1000)
        keys = [f"k{i % 40}" for i in range(1000)]
        before = clock.now
        batch = await asyncio.wait_for(producer.send_many(datas, keys), WAIT)
        waited = clock.now - before
        acks = await asyncio.wait_for(batch, WAIT)
        limit = producer.admission_bytes
    assert acks.ok and len(acks) == 1000
    assert waited > 80.0  # the call waited for the endpoint, part by part
    # What was buffered stayed within the limit, plus at most one part of a quarter of it.
    assert fake.most_over_limit <= limit // 4 + len(PAYLOAD) + 3
    # Every record was written once, each key's records in input order.
    written = [entry["Data"] for _, entry in fake.written]
    assert sorted(written) == sorted(datas)
    for key in {f"k{i}" for i in range(40)}:
        mine = [e["Data"] for _, e in fake.written if e["PartitionKey"] == key]
        assert mine == sorted(mine)


async def test_caps_also_take_an_oversized_batch_in_parts() -> None:
    clock = FakeClock()
    fake = DrainingKinesis(clock, RATE)
    async with draining_producer(fake, admission="caps", buffer_max_records=50) as producer:
        acks = await asyncio.wait_for(await producer.send_many(numbered(0, 400), ["kk"] * 400), WAIT)
        assert producer.buffered == (0, 0)
    assert acks.ok and len(fake.written) == 400
    assert [e["Data"] for _, e in fake.written] == numbered(0, 400)  # one key: in order


async def test_block_false_still_takes_an_oversized_batch_whole_or_refuses_it() -> None:
    clock = FakeClock()
    fake = DrainingKinesis(clock, RATE)
    async with draining_producer(fake, admission="drain-rate") as producer:
        # An empty buffer takes it whole (as before), nothing waits.
        batch = await producer.send_many(numbered(0, 100), ["a"] * 100, block=False)
        assert producer.buffered[0] == 100
        with pytest.raises(BufferFullError):
            await producer.send_many(numbered(100, 100), ["a"] * 100, block=False)
        assert (await asyncio.wait_for(batch, WAIT)).ok


async def test_a_cancelled_oversized_batch_fails_what_it_had_not_buffered() -> None:
    clock = FakeClock()
    fake = DrainingKinesis(clock, RATE)
    async with draining_producer(fake, admission="drain-rate") as producer:
        tickets: list[Any] = []
        first_part = asyncio.Event()
        enqueue = producer._enqueue_many

        def noting(ticket: Any, *args: Any) -> None:
            tickets.append(ticket)
            first_part.set()
            enqueue(ticket, *args)

        producer._enqueue_many = noting  # type: ignore[method-assign]
        sending = asyncio.create_task(producer.send_many(numbered(0, 1000), ["a"] * 1000))
        # The call takes parts until the limit is reached, then waits: its only suspension.
        await asyncio.wait_for(first_part.wait(), WAIT)
        buffered = producer.buffered[0]
        assert 0 < buffered < 1000
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(sending, WAIT)
        acks = await asyncio.wait_for(tickets[0].future, WAIT)
        await asyncio.wait_for(producer.flush(), WAIT)
        assert producer.buffered == (0, 0)
    assert len(acks.failed) == 1000 - buffered
    assert all("cancelled" in str(error) for error in acks.failed.values())
    assert len(fake.written) == buffered  # what was taken was still delivered


async def test_a_producer_closed_under_a_waiting_batch_reports_its_unbuffered_tail() -> None:
    clock = FakeClock()
    fake = DrainingKinesis(clock, RATE)
    async with draining_producer(fake, admission="drain-rate") as producer:
        parts = asyncio.Event()
        enqueue = producer._enqueue_many

        def noting(*args: Any) -> None:
            parts.set()
            enqueue(*args)

        producer._enqueue_many = noting  # type: ignore[method-assign]
        sending = asyncio.create_task(producer.send_many(numbered(0, 1000), ["a"] * 1000))
        await asyncio.wait_for(parts.wait(), WAIT)
        buffered = producer.buffered[0]
        closing = asyncio.create_task(producer.close(timeout=WAIT))
        batch = await asyncio.wait_for(sending, WAIT)  # returns: part of it was taken
        acks = await asyncio.wait_for(batch, WAIT)
        await asyncio.wait_for(closing, WAIT)
    assert len(acks.failed) == 1000 - buffered
    assert {type(error).__name__ for error in acks.failed.values()} == {"ClosedError"}
    assert len(fake.written) == buffered


async def test_an_oversized_batch_with_event_ids_and_hash_keys_is_taken_in_parts() -> None:
    """Records with an explicit hash key or an event id take the general path of each part."""
    from shardline.records import Record

    clock = FakeClock()
    fake = DrainingKinesis(clock, RATE)
    datas = numbered(0, 120)
    records = [
        Record(data, f"k{i % 7}", event_id=f"e{i}")
        if i % 3 == 0
        else Record(data, f"k{i % 7}", explicit_hash_key=i * 10**30)
        if i % 3 == 1
        else data
        for i, data in enumerate(datas)
    ]
    keys = [None if i % 3 != 2 else f"k{i % 7}" for i in range(120)]
    async with draining_producer(fake, admission="caps", buffer_max_records=16, aggregate=True) as producer:
        acks = await asyncio.wait_for(await producer.send_many(records, keys), WAIT)
        assert producer.buffered == (0, 0)
    assert acks.ok and len(acks) == 120
