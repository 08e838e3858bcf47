"""Kafka peer comparison: Shardline's producer/consumer against raw confluent-kafka and aiokafka.

Each client runs in its own process (``multiprocessing`` spawn), one after another, on the
same broker and workload: ``messages`` values of ``size`` bytes over ``keys`` keys into a
fresh topic.  Reported per run: messages/s over the timed part (first send .. last
acknowledgement) and the client process's CPU microseconds per message (user + sys), which
does not depend on the broker's speed.

    python -m benchmarks.peers.kafka --bootstrap 127.0.0.1:9092 --messages 1000000

``run_peer(name, bootstrap, topic, messages, size, keys)`` is the function API that
``stream-bench peers --target msk`` can call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import time
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["CONSUMERS", "PRODUCERS", "create_topic", "run_peer"]

_ACKS_ALL = {"acks": "all", "enable.idempotence": True, "linger.ms": 5, "compression.type": "none"}
"""The same delivery settings for every peer (aiokafka ships without lz4, so no compression)."""


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _workload(messages: int, size: int, keys: int) -> tuple[bytes, list[bytes]]:
    return b"x" * size, [f"device-{i}".encode() for i in range(keys)]


def _raw_producer(bootstrap: str, topic: str, messages: int, size: int, keys: int) -> int:
    from confluent_kafka import Producer

    value, names = _workload(messages, size, keys)
    delivered = [0]

    def on_delivery(err: Any, msg: Any) -> None:
        if err is None:
            delivered[0] += 1

    producer = Producer({"bootstrap.servers": bootstrap, **_ACKS_ALL})
    produce, poll = producer.produce, producer.poll
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


def _shardline_producer(bootstrap: str, topic: str, messages: int, size: int, keys: int) -> int:
    from producers.kafka import KafkaProducer, KafkaProducerConfig
    from shardline.kafka_config import KafkaClientConfig

    value, names = _workload(messages, size, keys)

    async def main() -> int:
        config = KafkaProducerConfig(compression="none", linger_ms=5)
        async with KafkaProducer(topic, KafkaClientConfig(bootstrap), config=config) as producer:
            send = producer.send
            futures = [await send(value, names[i % keys]) for i in range(messages)]
            await producer.flush()
        return sum(1 for f in futures if f.exception() is None)

    return asyncio.run(main())


def _aiokafka_producer(bootstrap: str, topic: str, messages: int, size: int, keys: int) -> int:
    from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped, import-not-found, unused-ignore]

    value, names = _workload(messages, size, keys)

    async def main() -> int:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,  # Tansu refuses its InitProducerId
            max_batch_size=1_000_000,
        )
        await producer.start()
        try:
            futures = [await producer.send(topic, value, key=names[i % keys]) for i in range(messages)]
            await producer.flush()
            results = await asyncio.gather(*futures, return_exceptions=True)
        finally:
            await producer.stop()
        return sum(1 for r in results if not isinstance(r, BaseException))

    return asyncio.run(main())


def _raw_consumer(bootstrap: str, topic: str, messages: int, size: int, keys: int) -> int:
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
        for msg in consumer.consume(1000, 0.5):
            if msg.error() is None:
                seen += 1
    consumer.close()
    return seen


def _shardline_consumer(bootstrap: str, topic: str, messages: int, size: int, keys: int) -> int:
    from consumers.kafka import KafkaConsumerConfig, KafkaSource
    from shardline.kafka_config import KafkaClientConfig

    async def main() -> int:
        config = KafkaConsumerConfig(group_id=f"bench-{uuid.uuid4().hex}", session_timeout_ms=6000)
        seen = 0
        async with KafkaSource([topic], KafkaClientConfig(bootstrap), config) as source:
            async for batch in source.batches():
                seen += len(batch.records)
                await source.checkpoint(batch.partition, batch.records[-1].position)
                if seen >= messages:
                    break
        return seen

    return asyncio.run(main())


PRODUCERS: dict[str, Callable[[str, str, int, int, int], int]] = {
    "shardline": _shardline_producer,
    "confluent-kafka": _raw_producer,
    "aiokafka": _aiokafka_producer,
}
CONSUMERS: dict[str, Callable[[str, str, int, int, int], int]] = {
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
    cpu0, wall0 = _cpu(), time.perf_counter()
    done = run(bootstrap, topic, messages, size, keys)
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    return {
        "client": name,
        "messages": done,
        "seconds": round(wall, 3),
        "msgs_per_s": round(done / wall) if wall else 0,
        "cpu_us_per_msg": round(cpu / max(done, 1) * 1e6, 2),
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--peers", default=",".join(PRODUCERS))
    args = parser.parse_args(argv)
    results = []
    consume_topic = None
    for name in args.peers.split(","):
        topic = create_topic(args.bootstrap, args.partitions)
        results.append(run_peer(name, args.bootstrap, topic, args.messages, args.size, args.keys))
        consume_topic = consume_topic or topic
        print(json.dumps(results[-1]), flush=True)
    if consume_topic is not None:
        for name in CONSUMERS:
            results.append(run_peer(name, args.bootstrap, consume_topic, args.messages, args.size, args.keys))
            print(json.dumps(results[-1]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
