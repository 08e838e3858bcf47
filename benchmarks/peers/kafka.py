"""Kafka peer comparison: Shardline's producer/consumer against raw confluent-kafka and aiokafka.

Each client runs in its own process (``multiprocessing`` spawn), one after another, on the
same broker and workload: ``messages`` values of ``size`` bytes over ``keys`` keys into a
fresh topic, after one warm-up message (connecting and getting a producer id is not timed),
with the same delivery settings (acks=all, idempotence where the client and broker allow
it, lz4, linger 5 ms).  Reported per run, over the timed part only:

* ``msgs_per_s`` — producers: first send .. last acknowledgement; consumers: first message
  received .. last one (the group join before it is the broker's, not the client's);
* ``cpu_us_per_msg`` — the client process's user + sys CPU over the same span, which does
  not depend on the broker's speed;
* ``cpu_util`` — CPU seconds / wall seconds: near 1.0 means the client's Python thread was
  the bottleneck, well below it means it waited on the broker (or on a busy machine).

    python -m benchmarks.peers.kafka --bootstrap 127.0.0.1:9092 --messages 1000000 --repeat 3

``run_peer(name, bootstrap, topic, messages, size, keys)`` is the function API that
``stream-bench peers --target msk`` can call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["CONSUMERS", "PRODUCERS", "create_topic", "run_peer", "summarise"]

_SETTINGS = {"acks": "all", "enable.idempotence": True, "linger.ms": 5, "compression.type": "lz4"}
"""The same delivery settings for every peer (aiokafka's lz4 needs cramjam: ``aiokafka[lz4]``)."""

_CHUNK = 10_000
"""Messages per ``send_many`` call in the batch run."""


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Span:
    """The timed part of a run: ``start()`` when the first message goes (or arrives)."""

    __slots__ = ("cpu", "wall")

    def __init__(self) -> None:
        self.wall: float | None = None
        self.cpu: float | None = None

    def start(self) -> None:
        if self.wall is None:
            self.wall, self.cpu = time.perf_counter(), _cpu()


Runner = Callable[..., int]
"""``(bootstrap, topic, messages, size, keys, span=None) -> messages delivered or read``."""


def _workload(size: int, keys: int) -> tuple[bytes, list[bytes]]:
    return b"x" * size, [f"device-{i}".encode() for i in range(keys)]


def _raw_producer(
    bootstrap: str, topic: str, messages: int, size: int, keys: int, span: Span | None = None
) -> int:
    span = span if span is not None else Span()
    from confluent_kafka import Producer

    value, names = _workload(size, keys)
    delivered = [0]

    def on_delivery(err: Any, msg: Any) -> None:
        if err is None:
            delivered[0] += 1

    producer = Producer({"bootstrap.servers": bootstrap, **_SETTINGS})
    produce, poll = producer.produce, producer.poll
    produce(topic, value, names[0])  # warm-up: connected, producer id assigned
    producer.flush()
    span.start()
    for i in range(messages):
        while True:
            try:
                produce(topic, value, names[i % keys], on_delivery=on_delivery)
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
    """One ``await send()`` per message, each with its own delivery future."""
    span = span if span is not None else Span()
    from producers.kafka import KafkaProducer

    value, names = _workload(size, keys)
    client, config = _shardline_client(bootstrap)

    async def main() -> int:
        async with KafkaProducer(topic, client, config=config) as producer:
            send = producer.send
            await producer.send_and_wait(value, names[0])  # warm-up
            span.start()
            futures = [await send(value, names[i % keys]) for i in range(messages)]
            await producer.flush()
        return sum(1 for f in futures if f.exception() is None)

    return asyncio.run(main())


def _shardline_batch_producer(
    bootstrap: str, topic: str, messages: int, size: int, keys: int, span: Span | None = None
) -> int:
    """``send_many`` in chunks of 10,000: one delivery future per chunk."""
    span = span if span is not None else Span()
    from producers.kafka import KafkaProducer

    value, names = _workload(size, keys)
    client, config = _shardline_client(bootstrap)

    async def main() -> int:
        async with KafkaProducer(topic, client, config=config) as producer:
            await producer.send_and_wait(value, names[0])  # warm-up
            span.start()
            futures = []
            for start in range(0, messages, _CHUNK):
                end = min(start + _CHUNK, messages)
                chunk_keys = [names[i % keys] for i in range(start, end)]
                futures.append(await producer.send_many([value] * (end - start), chunk_keys))
            results = await asyncio.gather(*futures)
        return sum(len(acks) - len(acks.failed) for acks in results)

    return asyncio.run(main())


def _aiokafka_producer(
    bootstrap: str, topic: str, messages: int, size: int, keys: int, span: Span | None = None
) -> int:
    span = span if span is not None else Span()
    from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped, import-not-found, unused-ignore]

    value, names = _workload(size, keys)

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
            await producer.send_and_wait(topic, value, key=names[0])  # warm-up
            span.start()
            futures = [await producer.send(topic, value, key=names[i % keys]) for i in range(messages)]
            await producer.flush()
            results = await asyncio.gather(*futures, return_exceptions=True)
        finally:
            await producer.stop()
        return sum(1 for r in results if not isinstance(r, BaseException))

    return asyncio.run(main())


def _raw_consumer(
    bootstrap: str, topic: str, messages: int, size: int, keys: int, span: Span | None = None
) -> int:
    span = span if span is not None else Span()
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
    seen = 0
    while seen < messages:
        batch = consumer.consume(1000, 0.5)
        if batch:
            span.start()
        for msg in batch:
            if msg.error() is None:
                seen += 1
    consumer.close()
    return seen


def _shardline_consumer(
    bootstrap: str, topic: str, messages: int, size: int, keys: int, span: Span | None = None
) -> int:
    """KafkaSource batches, an offset stored per batch as the pipeline would after its sink."""
    span = span if span is not None else Span()
    from consumers.kafka import KafkaConsumerConfig, KafkaSource
    from shardline.kafka_config import KafkaClientConfig

    async def main() -> int:
        config = KafkaConsumerConfig(group_id=f"bench-{uuid.uuid4().hex}", session_timeout_ms=6000)
        seen = 0
        async with KafkaSource([topic], KafkaClientConfig(bootstrap), config) as source:
            async for batch in source.batches():
                span.start()
                seen += len(batch.records)
                await source.checkpoint(batch.partition, batch.records[-1].position)
                if seen >= messages:
                    break
        return seen

    return asyncio.run(main())


PRODUCERS: dict[str, Runner] = {
    "shardline-send-many": _shardline_batch_producer,
    "shardline-send": _shardline_producer,
    "confluent-kafka": _raw_producer,
    "aiokafka": _aiokafka_producer,
}
CONSUMERS: dict[str, Runner] = {
    "shardline-consumer": _shardline_consumer,
    "confluent-kafka-consumer": _raw_consumer,
}


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
    wall_end, cpu_end = time.perf_counter(), _cpu()
    assert span.wall is not None and span.cpu is not None, "the run never started its timed part"
    wall, cpu = wall_end - span.wall, cpu_end - span.cpu
    return {
        "client": name,
        "messages": done,
        "seconds": round(wall, 3),
        "msgs_per_s": round(done / wall) if wall else 0,
        "cpu_us_per_msg": round(cpu / max(done, 1) * 1e6, 2),
        "cpu_util": round(cpu / wall, 2) if wall else 0.0,
        "load_1m_before": round(load, 2),
    }


def _child(queue: Any, *args: Any) -> None:
    queue.put(_measure(*args))


def run_peer(name: str, bootstrap: str, topic: str, messages: int, size: int, keys: int) -> dict[str, Any]:
    """Run one client in a fresh process and return its measurements."""
    if name not in PRODUCERS and name not in CONSUMERS:
        raise ValueError(f"unknown peer {name!r}; choose from {sorted({**PRODUCERS, **CONSUMERS})}")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(queue, name, bootstrap, topic, messages, size, keys))
    process.start()
    try:
        result: dict[str, Any] = queue.get(timeout=1800)
    except Exception as exc:
        process.join()
        raise RuntimeError(f"peer {name!r} failed (exit code {process.exitcode})") from exc
    process.join()
    return result


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median rate and CPU per client over the repeats, with per-repeat ratios' medians.

    Ratios are taken within each repeat (same minute, same machine load) against the raw
    confluent-kafka client of the same kind (producer or consumer) and against aiokafka.
    """
    by_repeat: dict[int, dict[str, dict[str, Any]]] = {}
    for result in results:
        by_repeat.setdefault(result["repeat"], {})[result["client"]] = result
    clients = list(dict.fromkeys(result["client"] for result in results))
    summary = []
    for client in clients:
        runs = [repeat[client] for repeat in by_repeat.values() if client in repeat]
        row: dict[str, Any] = {
            "client": client,
            "runs": len(runs),
            "median_msgs_per_s": round(statistics.median(r["msgs_per_s"] for r in runs)),
            "median_cpu_us_per_msg": round(statistics.median(r["cpu_us_per_msg"] for r in runs), 2),
            "median_cpu_util": round(statistics.median(r["cpu_util"] for r in runs), 2),
        }
        baseline = "confluent-kafka-consumer" if client in CONSUMERS else "confluent-kafka"
        peers = [(baseline, "vs_confluent_kafka")]
        if client in PRODUCERS:
            peers.append(("aiokafka", "vs_aiokafka"))
        for peer, label in peers:
            ratios = [
                repeat[client]["msgs_per_s"] / repeat[peer]["msgs_per_s"]
                for repeat in by_repeat.values()
                if client in repeat and peer in repeat and repeat[peer]["msgs_per_s"]
            ]
            if ratios:
                row[f"{label}_throughput"] = round(statistics.median(ratios), 2)
        summary.append(row)
    return summary


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
        for name in args.peers.split(","):
            topic = create_topic(args.bootstrap, args.partitions)
            result = run_peer(name, args.bootstrap, topic, args.messages, args.size, args.keys)
            results.append({"repeat": repeat, **result})
            consume_topic = consume_topic or topic
            print(json.dumps(results[-1]), flush=True)
        if consume_topic is not None and args.consumers:
            for name in args.consumers.split(","):
                result = run_peer(name, args.bootstrap, consume_topic, args.messages, args.size, args.keys)
                results.append({"repeat": repeat, **result})
                print(json.dumps(results[-1]), flush=True)
    for row in summarise(results):
        print(json.dumps({"summary": row}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
