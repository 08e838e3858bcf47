"""CPU per message of a steady, low-rate Kafka producer: the raw client against Shardline's ``send()``.

The throughput tables (:mod:`benchmarks.peers.kafka`) measure a producer that sends as fast as
it can, where librdkafka's batching and the loop's inline polls share the cost of each
delivery report among many messages.  A device gateway sends a few hundred messages a second,
one at a time, each with its own report: what a message costs then is mostly wake-ups (the
client's threads, the delivery thread, the event loop).  This runs each client in its own
process, paced at ``--rate`` messages per second for ``--seconds`` seconds, and reports the
process's CPU per message:

* ``confluent-kafka``: ``produce()`` + ``poll(0)`` per message on an asyncio loop that sleeps
  between messages (reports are served by the next ``poll(0)``);
* ``shardline-send``: ``await producer.send(value, key)`` per message, every future awaited at
  the end (reports are served by the delivery thread while the loop sleeps).

Both with the harness's delivery settings (idempotent, acks=all, lz4, linger 5 ms, the Java
partitioner); random 100-byte values over 1,000 keys.

    python -m benchmarks.peers.kafka_steady --bootstrap $SHARDLINE_KAFKA_BOOTSTRAP --rate 200 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.peers.kafka import create_topic, warm_raw_producer
from benchmarks.peers.runner import spawned_result
from benchmarks.process_stats import process_cpu_seconds

__all__ = ["CLIENTS", "main", "measure"]

_KEYS = 1_000
_SIZE = 100


def _paced(rate: float, seconds: float) -> list[float]:
    """The due times (seconds after the start) of a steady schedule."""
    return [n / rate for n in range(int(rate * seconds))]


async def _sleep_until(start: float, due: float) -> None:
    delay = start + due - time.monotonic()
    await asyncio.sleep(max(delay, 0.0))


def _raw(bootstrap: str, topic: str, rate: float, seconds: float) -> tuple[int, float]:
    producer, on_delivery, delivered = warm_raw_producer(bootstrap, topic, b"warm-up", b"warm-up")
    produce, poll = producer.produce, producer.poll
    keys = [f"device-{n:06d}".encode() for n in range(_KEYS)]

    async def run() -> float:
        started = process_cpu_seconds()
        start = time.monotonic()
        for due in _paced(rate, seconds):
            await _sleep_until(start, due)
            produce(topic, os.urandom(_SIZE), random.choice(keys), on_delivery=on_delivery)
            poll(0)
        producer.flush()
        return process_cpu_seconds() - started

    cpu = asyncio.run(run())
    return delivered[0], cpu


def _shardline(bootstrap: str, topic: str, rate: float, seconds: float) -> tuple[int, float]:
    from benchmarks.peers.kafka import _shardline_client
    from producers.kafka import KafkaProducer

    client, config = _shardline_client(bootstrap)
    keys = [f"device-{n:06d}".encode() for n in range(_KEYS)]

    async def run() -> tuple[int, float]:
        async with KafkaProducer(topic, client, config=config) as producer:
            await producer.send_and_wait(b"warm-up", b"warm-up")
            send = producer.send
            started = process_cpu_seconds()
            start = time.monotonic()
            futures = []
            for due in _paced(rate, seconds):
                await _sleep_until(start, due)
                futures.append(await send(os.urandom(_SIZE), random.choice(keys)))
            delivered = 0
            for future in futures:
                await future
                delivered += 1
            return delivered, process_cpu_seconds() - started

    return asyncio.run(run())


CLIENTS: dict[str, Callable[[str, str, float, float], tuple[int, float]]] = {
    "confluent-kafka": _raw,
    "shardline-send": _shardline,
}


def _child(queue: Any, name: str, bootstrap: str, topic: str, rate: float, seconds: float) -> None:
    try:
        delivered, cpu = CLIENTS[name](bootstrap, topic, rate, seconds)
        queue.put({"delivered": delivered, "cpu_seconds": cpu})
    except Exception as exc:  # noqa: BLE001 - reported as this client's row
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def measure(name: str, bootstrap: str, rate: float, seconds: float, *, partitions: int = 4) -> dict[str, Any]:
    """One client's run in its own process: messages delivered and CPU-µs per message."""
    topic = create_topic(bootstrap, partitions)
    result, failure = spawned_result(_child, name, bootstrap, topic, rate, seconds, timeout=seconds + 120)
    if failure is not None:
        return {"client": name, "error": failure}
    if "error" in result:
        return {"client": name, "error": result["error"]}
    expected = int(rate * seconds)
    if result["delivered"] != expected:
        return {"client": name, "error": f"{result['delivered']} of {expected} messages delivered"}
    return {
        "client": name,
        "messages": expected,
        "cpu_us_per_msg": result["cpu_seconds"] / expected * 1e6,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    args = parser.parse_args(argv)
    names = [name for name in args.clients.split(",") if name]
    unknown = sorted(set(names) - set(CLIENTS))
    if unknown:
        parser.error(f"unknown client(s): {', '.join(unknown)} (known: {', '.join(CLIENTS)})")
    runs: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeat):
        for name in names:  # alternated, so a slow minute of the machine hits every client
            row = measure(name, args.bootstrap, args.rate, args.seconds)
            print(json.dumps({"repeat": repeat, **row}), flush=True)
            if "error" in row:
                return 1
            runs[name].append(row["cpu_us_per_msg"])
    base = runs.get("confluent-kafka")
    for name, values in runs.items():
        summary: dict[str, Any] = {
            "client": name,
            "rate": args.rate,
            "cpu_us_per_msg": {
                "median": round(statistics.median(values), 1),
                "min": round(min(values), 1),
                "max": round(max(values), 1),
            },
        }
        if base:
            ratios = [value / raw for value, raw in zip(values, base, strict=True)]
            summary["vs_raw_cpu"] = {
                "median": round(statistics.median(ratios), 2),
                "min": round(min(ratios), 2),
                "max": round(max(ratios), 2),
            }
        print(json.dumps({"summary": summary}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
