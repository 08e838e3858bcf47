"""Kafka peer comparison: Shardline against confluent-kafka (raw and asyncio) and aiokafka.

Each client runs in its own process (``multiprocessing`` spawn), one after another, on the
same broker and workload, with the same delivery settings for every producer (acks=all,
idempotence where the client and broker allow it, lz4, linger 5 ms).

The timed span starts from the user's raw data and ends when every message is acknowledged
(producers) or handed over (consumers):

* the raw data, generated BEFORE the span, is a list of ``messages`` random values of
  ``size`` bytes (``os.urandom``: compression and caching make one repeated value look
  cheaper than real traffic) and a list of one key per message, drawn uniformly from
  ``keys`` names;
* every object a client's API needs (chunk slices of those lists, futures, records) is
  built INSIDE the span, because the caller pays for it;
* after one warm-up message (connecting and getting a producer id is not timed).

Reported per run, over the timed part only:

* ``msgs_per_s`` -- producers: first send .. last acknowledgement; consumers: first message
  received .. last one (the group join before it is the broker's, not the client's);
* ``cpu_us_per_msg`` -- the client process's user + sys CPU over the same span, which does
  not depend on the broker's speed (far less sensitive to other load than wall time);
* ``gc_us_per_msg`` -- the part of that CPU spent in the garbage collector, and
  ``gc_collections`` by generation (:mod:`benchmarks.peers.gc_clock`);
* ``cpu_util`` -- CPU seconds / wall seconds: near 1.0 means the client's Python thread was
  the bottleneck, well below it means it waited on the broker (or on a busy machine).

Clients run interleaved (every client once per repetition, A B A B ...); the summary gives,
per client, medians with min-max over the repetitions, and ratios taken WITHIN each
repetition against the raw client of the same kind: producers against confluent-kafka's
``produce()`` + ``poll(0)``, consumers against a raw ``consume(1000)`` loop that touches
every message, and the value-reading consumer variants against the raw loop that also
reads every value.  The 1-minute load average is recorded before each run.

    python -m benchmarks.peers.kafka --bootstrap HOST:PORT --messages 1000000 --keys 10000 \
        --partitions 8 --size 100 --repeat 3

``run_peer(name, bootstrap, topic, messages, size, keys)`` is the function API that
``stream-bench peers --target msk`` can call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks.peers.gc_clock import GcClock
from benchmarks.peers.runner import spawned_result
from benchmarks.process_stats import process_cpu_seconds

__all__ = ["CONSUMERS", "PRODUCERS", "create_topic", "run_peer", "summarise", "workload"]

_SETTINGS = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    "compression.type": "lz4",
    "partitioner": "murmur2_random",
}
"""The same delivery settings for every peer (aiokafka's lz4 needs cramjam: ``aiokafka[lz4]``).

The partitioner is the Java client's, as Shardline's producer and aiokafka use by default."""

_CHUNK = 10_000
"""Messages per ``send_many`` call in the batch run."""

_KEY_SEED = 14
"""Keys are drawn reproducibly (the same key sequence for every client of a run)."""


class Span:
    """The timed part of a run: ``start()`` when the first message goes (or arrives)."""

    __slots__ = ("collector", "cpu", "wall")

    def __init__(self) -> None:
        self.wall: float | None = None
        self.cpu: float | None = None
        self.collector = GcClock()

    def start(self) -> None:
        if self.wall is None:
            self.wall, self.cpu = time.perf_counter(), process_cpu_seconds()
            self.collector.start()


Runner = Callable[..., int]
"""``(bootstrap, topic, messages, size, keys, span=None) -> messages delivered or read``."""


def workload(messages: int, size: int, keys: int) -> tuple[list[bytes], list[bytes]]:
    """The user's raw data: ``messages`` random values and one key per message.

    Built before the timed span, as an application holds its data before it produces.
    """
    names = [f"device-{i}".encode() for i in range(max(keys, 1))]
    values = [os.urandom(size) for _ in range(messages)]
    return values, random.Random(_KEY_SEED).choices(names, k=messages)


def warm_raw_producer(
    bootstrap: str, topic: str, value: bytes, key: bytes
) -> tuple[Any, Callable[[Any, Any], None], list[int]]:
    """A confluent-kafka producer with the harness's settings, warmed up by one message
    (connected, producer id assigned), its delivery callback and the count it keeps
    (``[delivered]``)."""
    from confluent_kafka import Producer

    delivered = [0]

    def on_delivery(err: Any, msg: Any) -> None:
        if err is None:
            delivered[0] += 1

    producer = Producer({"bootstrap.servers": bootstrap, **_SETTINGS})
    producer.produce(topic, value, key)
    producer.flush()
    return producer, on_delivery, delivered


def _raw_producer(
    bootstrap: str, topic: str, messages: int, size: int, keys: int, span: Span | None = None
) -> int:
    """confluent-kafka's ``produce()`` + ``poll(0)`` with a delivery callback counting acks."""
    span = span if span is not None else Span()
    values, message_keys = workload(messages, size, keys)
    producer, on_delivery, delivered = warm_raw_producer(bootstrap, topic, values[0], message_keys[0])
    produce, poll = producer.produce, producer.poll
    span.start()
    for value, key in zip(values, message_keys, strict=True):
        while True:
            try:
                produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                poll(0.01)
        poll(0)
    producer.flush()
    return delivered[0]


def _shardline_client(bootstrap: str) -> Any:
    from producers.kafka import KafkaProducerConfig
    from shardline.kafka_config import KafkaClientConfig

    return KafkaClientConfig(bootstrap), KafkaProducerConfig(compression="lz4", linger_ms=5)


def _shardline_producer(
    bootstrap: str, topic: str, messages: int, size: int, keys: int, span: Span | None = None
) -> int:
    """``fut = await send(value, key)`` per message, then ``await fut`` for every ack."""
    span = span if span is not None else Span()
    from producers.kafka import KafkaProducer

    values, message_keys = workload(messages, size, keys)
    client, config = _shardline_client(bootstrap)

    async def main() -> int:
        async with KafkaProducer(topic, client, config=config) as producer:
            send = producer.send
            await producer.send_and_wait(values[0], message_keys[0])  # warm-up
            span.start()
            futures = [await send(value, key) for value, key in zip(values, message_keys, strict=True)]
            acked = 0
            for future in futures:
                await future
                acked += 1
        return acked

    return asyncio.run(main())


def _shardline_batch_producer(
    bootstrap: str, topic: str, messages: int, size: int, keys: int, span: Span | None = None
) -> int:
    """``send_many(values, keys)`` in chunks of 10,000 (slices made in the span): one future each."""
    span = span if span is not None else Span()
    from producers.kafka import KafkaProducer

    values, message_keys = workload(messages, size, keys)
    client, config = _shardline_client(bootstrap)

    async def main() -> int:
        async with KafkaProducer(topic, client, config=config) as producer:
            send_many = producer.send_many
            await producer.send_and_wait(values[0], message_keys[0])  # warm-up
            span.start()
            futures = [
                await send_many(values[start : start + _CHUNK], message_keys[start : start + _CHUNK])
                for start in range(0, messages, _CHUNK)
            ]
            results = await asyncio.gather(*futures)
        return sum(len(acks) - len(acks.failed) for acks in results)

    return asyncio.run(main())


def _aio_producer(
    bootstrap: str, topic: str, messages: int, size: int, keys: int, span: Span | None = None
) -> int:
    """confluent-kafka's own asyncio producer, ``confluent_kafka.aio.AIOProducer``, as shipped.

    ``fut = await produce(topic, value, key)`` per message (its defaults: messages buffered in
    batches of 1,000, handed to librdkafka's ``produce_batch`` from a thread pool), then a
    flush, because its futures resolve only when something polls the producer, then every
    future awaited in order, as for ``shardline-send``.
    """
    span = span if span is not None else Span()
    from confluent_kafka.aio import AIOProducer  # type: ignore[attr-defined, unused-ignore]

    values, message_keys = workload(messages, size, keys)

    async def main() -> int:
        producer = AIOProducer({"bootstrap.servers": bootstrap, **_SETTINGS})
        try:
            warm_up = await producer.produce(topic, values[0], message_keys[0])
            await producer.flush()
            await warm_up
            span.start()
            produce = producer.produce
            futures = [
                await produce(topic, value, key) for value, key in zip(values, message_keys, strict=True)
            ]
            await producer.flush()
            acked = 0
            for future in futures:
                await future  # a failed delivery raises here and fails the run
                acked += 1
        finally:
            await producer.close()
        return acked

    return asyncio.run(main())


def _aiokafka_producer(
    bootstrap: str, topic: str, messages: int, size: int, keys: int, span: Span | None = None
) -> int:
    span = span if span is not None else Span()
    from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped, import-not-found, unused-ignore]

    values, message_keys = workload(messages, size, keys)

    async def main() -> int:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",  # enable_idempotence=True fails: Tansu refuses aiokafka's InitProducerId
            compression_type="lz4",
            linger_ms=5,
            max_batch_size=1_000_000,
        )
        await producer.start()
        try:
            await producer.send_and_wait(topic, values[0], key=message_keys[0])  # warm-up
            span.start()
            send = producer.send
            futures = [
                await send(topic, value, key=key) for value, key in zip(values, message_keys, strict=True)
            ]
            await producer.flush()
            results = await asyncio.gather(*futures, return_exceptions=True)
        finally:
            await producer.stop()
        return sum(1 for r in results if not isinstance(r, BaseException))

    return asyncio.run(main())


def _raw_consumer_loop(bootstrap: str, messages: int, topic: str, span: Span, *, read_values: bool) -> int:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "fetch.queue.backoff.ms": 10,
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topic])
    seen = total = 0
    while seen < messages:
        batch = consumer.consume(1000, 0.5)
        if batch:
            span.start()
        if read_values:
            for msg in batch:
                if msg.error() is None:
                    seen += 1
                    total += len(msg.value() or b"")
        else:
            for msg in batch:
                if msg.error() is None:
                    seen += 1
    consumer.close()
    return min(seen, messages)  # the topic also holds the producer's warm-up message


def _raw_consumer(
    bootstrap: str, topic: str, messages: int, size: int, keys: int, span: Span | None = None
) -> int:
    """A raw ``consume(1000)`` loop that checks every message's error (builds nothing)."""
    return _raw_consumer_loop(bootstrap, messages, topic, span or Span(), read_values=False)


def _raw_consumer_values(
    bootstrap: str, topic: str, messages: int, size: int, keys: int, span: Span | None = None
) -> int:
    """The raw ``consume(1000)`` loop that also reads every message's value."""
    return _raw_consumer_loop(bootstrap, messages, topic, span or Span(), read_values=True)


def _shardline_consumer_loop(
    bootstrap: str, messages: int, topic: str, span: Span, *, read_values: bool
) -> int:
    from consumers.kafka import KafkaConsumerConfig, KafkaSource
    from shardline.kafka_config import KafkaClientConfig

    async def main() -> int:
        config = KafkaConsumerConfig(group_id=f"bench-{uuid.uuid4().hex}", session_timeout_ms=6000)
        seen = total = 0
        async with KafkaSource([topic], KafkaClientConfig(bootstrap), config) as source:
            checkpoint = source.checkpoint
            async for batch in source.batches():
                span.start()
                records = batch.records
                seen += len(records)
                if read_values:
                    for record in records:
                        total += len(record.data)
                await checkpoint(batch.partition, records[-1].position)
                if seen >= messages:
                    break
        return min(seen, messages)  # the topic also holds the producer's warm-up message

    return asyncio.run(main())


def _shardline_consumer(
    bootstrap: str, topic: str, messages: int, size: int, keys: int, span: Span | None = None
) -> int:
    """KafkaSource batches touching only each batch's length and last position (stored as the
    pipeline stores an offset after its sink)."""
    return _shardline_consumer_loop(bootstrap, messages, topic, span or Span(), read_values=False)


def _shardline_consumer_values(
    bootstrap: str, topic: str, messages: int, size: int, keys: int, span: Span | None = None
) -> int:
    """KafkaSource batches reading every record's value, then storing the last position."""
    return _shardline_consumer_loop(bootstrap, messages, topic, span or Span(), read_values=True)


PRODUCERS: dict[str, Runner] = {
    "confluent-kafka": _raw_producer,
    "shardline-send-many": _shardline_batch_producer,
    "shardline-send": _shardline_producer,
    "confluent-kafka-aio": _aio_producer,
    "aiokafka": _aiokafka_producer,
}
CONSUMERS: dict[str, Runner] = {
    "confluent-kafka-consumer": _raw_consumer,
    "shardline-consumer": _shardline_consumer,
    "confluent-kafka-consumer-values": _raw_consumer_values,
    "shardline-consumer-values": _shardline_consumer_values,
}
_ASYNC_PEERS = {"aiokafka": "aiokafka", "confluent-kafka-aio": "confluent_aio"}
"""The asyncio producers every producer is also compared with (client name -> summary label)."""
_BASELINES = {
    "producer": "confluent-kafka",
    "consumer": "confluent-kafka-consumer",
    "consumer-values": "confluent-kafka-consumer-values",
}


def _baseline(client: str) -> str:
    if client in PRODUCERS:
        return _BASELINES["producer"]
    return _BASELINES["consumer-values" if client.endswith("-values") else "consumer"]


def create_topic(bootstrap: str, partitions: int = 8) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    name = f"bench-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # keep it alive until the result
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(timeout=30)
    return name


def _measure(name: str, bootstrap: str, topic: str, messages: int, size: int, keys: int) -> dict[str, Any]:
    run = {**PRODUCERS, **CONSUMERS}[name]
    span = Span()
    load = os.getloadavg()[0]
    done = run(bootstrap, topic, messages, size, keys, span)
    wall_end, cpu_end = time.perf_counter(), process_cpu_seconds()
    span.collector.stop()
    assert span.wall is not None and span.cpu is not None, "the run never started its timed part"
    wall, cpu = wall_end - span.wall, cpu_end - span.cpu
    return {
        "client": name,
        "messages": done,
        "expected": messages,
        "seconds": round(wall, 3),
        "msgs_per_s": round(done / wall) if wall else 0,
        "cpu_us_per_msg": round(cpu / max(done, 1) * 1e6, 2),
        **span.collector.report(done, "msg"),
        "cpu_util": round(cpu / wall, 2) if wall else 0.0,
        "load_1m_before": round(load, 2),
    }


def _child(queue: Any, *args: Any) -> None:
    try:
        queue.put(_measure(*args))
    except Exception as exc:  # noqa: BLE001 - handed to run_peer, which raises it for this client
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


PEER_TIMEOUT_S = 1800.0


def run_peer(
    name: str,
    bootstrap: str,
    topic: str,
    messages: int,
    size: int,
    keys: int,
    *,
    timeout: float = PEER_TIMEOUT_S,
) -> dict[str, Any]:
    """Run one client in a fresh process and return its measurements.

    A client that fails raises RuntimeError as soon as its process reports it or ends
    (:func:`benchmarks.peers.runner.spawned_result`); one that gives no result within
    ``timeout`` seconds is stopped first.  Waiting on the result alone, a client that died
    held the table for the whole timeout, and one still running (a consumer waiting for
    messages that never came) forever.
    """
    if name not in PRODUCERS and name not in CONSUMERS:
        raise ValueError(f"unknown peer {name!r}; choose from {sorted({**PRODUCERS, **CONSUMERS})}")
    outcome, failure = spawned_result(_child, name, bootstrap, topic, messages, size, keys, timeout=timeout)
    if failure is not None:
        raise RuntimeError(f"peer {name!r}: {failure}")
    result: dict[str, Any] = outcome
    if "error" in result:
        raise RuntimeError(f"peer {name!r} failed: {result['error']}")
    return result


def _spread(values: list[float], digits: int) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def _complete(result: dict[str, Any]) -> bool:
    """Whether a run delivered (producers) or read (consumers) every message it was given.

    A producer whose deliveries failed did less work in its span than its peers did in theirs;
    its msg/s and CPU per message are no figure to rank (results from before the ``expected``
    field count as complete)."""
    done = result.get("messages", 0)
    return bool(done >= result.get("expected", done))


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per client: medians with min-max over the repeats, and ratios taken within each repeat.

    Only complete runs (:func:`_complete`) count, for the client and as a baseline; the others
    are counted in ``incomplete_runs``, and a client with none complete gets an ``error``.

    Each ratio compares a client with the raw confluent-kafka client of its kind measured in
    the same repetition (same minute, same machine load): ``vs_raw_throughput`` is msg/s over
    the raw client's msg/s (higher is better), ``vs_raw_cpu`` CPU-us per message over the raw
    client's (lower is better).  Producers are also compared, msg/s and CPU, with the asyncio
    producers: aiokafka and confluent-kafka's own ``AIOProducer`` (``vs_aiokafka_*``,
    ``vs_confluent_aio_*``).
    """
    by_repeat: dict[int, dict[str, dict[str, Any]]] = {}
    incomplete: dict[str, int] = {}
    for result in results:
        if not _complete(result):
            incomplete[result["client"]] = incomplete.get(result["client"], 0) + 1
            continue
        by_repeat.setdefault(result["repeat"], {})[result["client"]] = result
    clients = list(dict.fromkeys(result["client"] for result in results))
    summary = []
    for client in clients:
        runs = [repeat[client] for repeat in by_repeat.values() if client in repeat]
        if not runs:
            summary.append(
                {
                    "client": client,
                    "runs": 0,
                    "incomplete_runs": incomplete.get(client, 0),
                    "error": "no run delivered (or read) every message",
                }
            )
            continue
        row: dict[str, Any] = {
            "client": client,
            "runs": len(runs),
            "incomplete_runs": incomplete.get(client, 0),
            "msgs_per_s": _spread([r["msgs_per_s"] for r in runs], 0),
            "cpu_us_per_msg": _spread([r["cpu_us_per_msg"] for r in runs], 2),
            "gc_us_per_msg": _spread([r.get("gc_us_per_msg", 0.0) for r in runs], 2),
            "cpu_util": _spread([r["cpu_util"] for r in runs], 2),
            "load_1m": _spread([r["load_1m_before"] for r in runs], 2),
            # kept for readers of the earlier output
            "median_msgs_per_s": round(statistics.median(r["msgs_per_s"] for r in runs)),
            "median_cpu_us_per_msg": round(statistics.median(r["cpu_us_per_msg"] for r in runs), 2),
        }
        baseline = _baseline(client)
        pairs = [
            (repeat[client], repeat[baseline])
            for repeat in by_repeat.values()
            if client in repeat and baseline in repeat
        ]
        throughput = [mine["msgs_per_s"] / raw["msgs_per_s"] for mine, raw in pairs if raw["msgs_per_s"]]
        cpu = [mine["cpu_us_per_msg"] / raw["cpu_us_per_msg"] for mine, raw in pairs if raw["cpu_us_per_msg"]]
        if throughput:
            row["vs_raw_throughput"] = _spread(throughput, 2)
        if cpu:
            row["vs_raw_cpu"] = _spread(cpu, 2)
        row["vs_raw_of"] = baseline
        if client in PRODUCERS:
            # against the asyncio peers too, each within its repetition
            for peer, label in _ASYNC_PEERS.items():
                for field, measure in (("throughput", "msgs_per_s"), ("cpu", "cpu_us_per_msg")):
                    ratios = [
                        repeat[client][measure] / repeat[peer][measure]
                        for repeat in by_repeat.values()
                        if client in repeat and peer in repeat and repeat[peer][measure]
                    ]
                    if ratios:
                        row[f"vs_{label}_{field}"] = _spread(ratios, 2)
        summary.append(row)
    return summary


def _names(listed: str) -> list[str]:
    """The clients a ``--peers`` / ``--consumers`` list names (``""``: none)."""
    return [name.strip() for name in listed.split(",") if name.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--peers", default=",".join(PRODUCERS))
    parser.add_argument("--consumers", default=",".join(CONSUMERS))
    args = parser.parse_args(argv)
    results = []
    for repeat in range(args.repeat):
        consume_topic = None
        for name in _names(args.peers):
            topic = create_topic(args.bootstrap, args.partitions)
            result = run_peer(name, args.bootstrap, topic, args.messages, args.size, args.keys)
            results.append({"repeat": repeat, **result})
            if _complete(result):  # a topic short of messages would keep its readers waiting
                consume_topic = consume_topic or topic
            print(json.dumps(results[-1]), flush=True)
        if consume_topic is not None and args.consumers:
            for name in _names(args.consumers):
                result = run_peer(name, args.bootstrap, consume_topic, args.messages, args.size, args.keys)
                results.append({"repeat": repeat, **result})
                print(json.dumps(results[-1]), flush=True)
    for row in summarise(results):
        print(json.dumps({"summary": row}), flush=True)
    # a failed or incomplete run is left out of the summary: the status says one was
    return 0 if all("error" not in result and _complete(result) for result in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
