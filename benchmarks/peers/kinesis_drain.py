"""A Kinesis producer fed far more than a slow endpoint delivers within the record TTL.

A TCP proxy in front of the Kinesis endpoint forwards requests at ``--rate-kib`` KiB/s (all
connections together: one slow link; answers are not slowed), so the endpoint drains about
three quarters of that in user bytes (request bodies carry them base64-encoded).  The caller
sends ``--mb`` MB of random ``--record-size`` byte records with ``send()`` as fast as it
returns, keeping each future (or, with ``--feed batch``, all of them in one ``send_many()``
call), then waits until every record is acknowledged or has failed.
Run once per admission mode (``--admission caps``, ``drain-rate`` or ``both``, one after the
other, each on a fresh stream); reported per run: records accepted, delivered and failed
(DeliveryError after ``--ttl`` seconds, or other), the seconds ``send()`` spent waiting, the
time to feed everything and to resolve it all, and the producer's measured drain rate and
byte limit at the end.

    python -m benchmarks.peers.kinesis_drain --endpoint http://127.0.0.1:4567 --mb 40 \\
        --rate-kib 1024 --ttl 30 --admission both

reproduces the case of a 4-shard stream fed 40 MB at once through a ~1 MB/s endpoint
(about a minute per mode).  Records taken into a request do not expire while it is on the
wire, and the producer puts up to ``max_in_flight_bytes`` (16 MiB) on the wire at once, so
only what is fed beyond that can expire; a smaller run scales those down too:
``--mb 2 --rate-kib 512 --ttl 2 --max-batch-kib 64 --max-in-flight-kib 256``.
``--rate-kib 0`` sends straight to the endpoint: whether admission costs throughput at full
speed (``user_mb_per_s``: the bytes of the records delivered, not of those that failed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import Any

from benchmarks.peers.kinesis import fresh_stream
from benchmarks.peers.kinesis_stall import StallingProxy

__all__ = ["RateLimitedProxy", "run_drain"]

KiB = 1024


class RateLimitedProxy(StallingProxy):
    """A TCP proxy whose request direction forwards at most ``rate`` bytes per second in total.

    Every connection draws on one budget (a single slow link): each chunk read from a client
    reserves the next ``len(chunk) / rate`` seconds of the link and is forwarded when its
    reservation ends.  Answers flow unpaced.  ``stall()`` / ``release()`` still work.
    """

    chunk = 8 * KiB  # small pieces keep the pace smooth

    def __init__(self, target: str, rate: float) -> None:
        super().__init__(target)
        self.rate = rate
        self._free_at = 0.0  # loop time at which the link is next free
        self.forwarded = 0
        """Request bytes forwarded so far."""

    async def _pace(self, nbytes: int) -> None:
        now = asyncio.get_running_loop().time()
        self._free_at = max(now, self._free_at) + nbytes / self.rate
        await asyncio.sleep(self._free_at - now)  # the link's pace, not a synchronisation
        self.forwarded += nbytes


async def _fed_run(
    endpoint: str,
    stream: str,
    nbytes: int,
    record_size: int,
    keys: int,
    rate: float,
    options: dict[str, Any],
    feed: str = "send",
) -> dict[str, Any]:
    from producers import KinesisProducer
    from shardline.errors import DeliveryError

    proxy = RateLimitedProxy(endpoint, rate) if rate > 0 else None
    proxied = await proxy.start() if proxy is not None else endpoint
    count = max(nbytes // record_size, 1)
    futures: list[asyncio.Future[Any]] = []
    waited = 0.0
    try:
        async with KinesisProducer(stream, endpoint_url=proxied, **options) as producer:
            bound = options["record_ttl"] + (2 * count * record_size / rate if proxy else 0) + 60
            results: list[Any]
            if feed == "batch":
                datas = [os.urandom(record_size) for _ in range(count)]
                names = [f"device-{i % keys}" for i in range(count)]
                started = time.monotonic()
                batch = await asyncio.wait_for(producer.send_many(datas, names), bound)
                fed = waited = time.monotonic() - started
                acks = await asyncio.wait_for(batch, bound)
                results = [acks.failed.get(i) for i in range(count)]
            else:
                started = time.monotonic()
                for i in range(count):
                    data, key = os.urandom(record_size), f"device-{i % keys}"
                    before = time.monotonic()
                    futures.append(await producer.send(data, partition_key=key))
                    waited += time.monotonic() - before
                fed = time.monotonic() - started
                results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), bound)
            resolved = time.monotonic() - started
            drain_rate = producer.drain_rate
            admission_bytes = producer.admission_bytes
    finally:
        if proxy is not None:
            await proxy.stop()
    expired = sum(isinstance(r, DeliveryError) for r in results)
    other = sum(isinstance(r, BaseException) and not isinstance(r, DeliveryError) for r in results)
    delivered = len(results) - expired - other
    return {
        "admission": options["admission"],
        "feed": feed,
        "records": count,
        "record_size": record_size,
        "proxy_kib_per_s": round(rate / KiB, 1) if proxy else None,
        "record_ttl": options["record_ttl"],
        "max_batch_bytes": producer.config.max_batch_bytes,
        "max_in_flight_bytes": producer.config.max_in_flight_bytes,
        "accepted": len(results),
        "delivered": delivered,
        "failed_delivery_error": expired,
        "failed_other": other,
        "send_wait_s": round(waited, 2),
        "feed_s": round(fed, 2),
        "all_resolved_s": round(resolved, 2),
        # what reached the stream: a record that expired is no throughput, however fast it failed
        "user_mb_per_s": round(delivered * record_size / resolved / 1e6, 2),
        "measured_drain_kib_per_s": None if drain_rate is None else round(drain_rate / KiB, 1),
        "admission_bytes_at_end": admission_bytes,
    }


def run_drain(
    endpoint: str,
    *,
    admission: str,
    megabytes: float = 40.0,
    rate_kib: float = 1024.0,
    record_ttl: float = 30.0,
    record_size: int = 1000,
    keys: int = 1000,
    shards: int = 4,
    max_batch_bytes: int | None = None,
    max_in_flight_bytes: int | None = None,
    feed: str = "send",
) -> dict[str, Any]:
    """One run on a fresh stream; the figures as a dict."""
    stream = f"drain-{uuid.uuid4().hex[:8]}"
    options: dict[str, Any] = {"rate_limit_percent": None, "record_ttl": record_ttl, "admission": admission}
    if max_batch_bytes is not None:  # else the producer's defaults
        options["max_batch_bytes"] = max_batch_bytes
    if max_in_flight_bytes is not None:
        options["max_in_flight_bytes"] = max_in_flight_bytes
    with fresh_stream(endpoint, stream, shards):
        return asyncio.run(
            _fed_run(endpoint, stream, int(megabytes * 1e6), record_size, keys, rate_kib * KiB, options, feed)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers.kinesis_drain", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--endpoint", required=True, help="Kinesis endpoint URL (e.g. kinesis-mock)")
    parser.add_argument("--admission", choices=["caps", "drain-rate", "both"], default="both")
    parser.add_argument("--mb", type=float, default=40.0, help="megabytes fed at once")
    parser.add_argument(
        "--rate-kib", type=float, default=1024.0, help="proxy's request rate, KiB/s (0: no proxy, full speed)"
    )
    parser.add_argument("--ttl", type=float, default=30.0, help="record_ttl in seconds")
    parser.add_argument("--record-size", type=int, default=1000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--max-batch-kib", type=int, help="max_batch_bytes in KiB (default: the producer's)")
    parser.add_argument(
        "--max-in-flight-kib", type=int, help="max_in_flight_bytes in KiB (default: the producer's)"
    )
    parser.add_argument(
        "--feed",
        choices=["send", "batch"],
        default="send",
        help="send(): one call per record; batch: every record in one send_many() call",
    )
    args = parser.parse_args(argv)
    modes = ["caps", "drain-rate"] if args.admission == "both" else [args.admission]
    for mode in modes:
        result = run_drain(
            args.endpoint,
            admission=mode,
            megabytes=args.mb,
            rate_kib=args.rate_kib,
            record_ttl=args.ttl,
            record_size=args.record_size,
            keys=args.keys,
            shards=args.shards,
            max_batch_bytes=None if args.max_batch_kib is None else args.max_batch_kib * KiB,
            max_in_flight_bytes=None if args.max_in_flight_kib is None else args.max_in_flight_kib * KiB,
            feed=args.feed,
        )
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
