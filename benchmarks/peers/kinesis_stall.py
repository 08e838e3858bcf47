"""Memory of a Kinesis producer whose endpoint stalls while the caller keeps sending.

A small TCP proxy in front of the Kinesis endpoint lets the producer start (ListShards,
DescribeStreamSummary), then holds every request unanswered for ``--stall`` seconds (on kept
connections too: nothing gets through, nor an answer), then lets everything through.  During
the stall the caller sends random payloads as fast as ``send()`` returns, keeping no future,
so back-pressure is all that bounds the producer.  The process's resident set size (RSS,
``/proc/self/statm``) is sampled every ``--sample`` seconds; reported: RSS before the first
send, its peak, the growth, the buffer caps, how many records were accepted during the
stall, and that every record was acknowledged after it (the flush is bounded).

    python -m benchmarks.peers.kinesis_stall --endpoint http://127.0.0.1:4567 --stall 60

``--max-in-flight-mib`` sets the producer's ``max_in_flight_bytes`` (default: its default).

The stream (4 shards by default) is created on the endpoint and deleted afterwards.  The
proxy holds at most one 64 KiB chunk per connection in this process; what the operating
system keeps in socket buffers is not part of the RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
import uuid
from typing import Any

from benchmarks.peers.kinesis import fresh_stream
from benchmarks.process_stats import rss_bytes

__all__ = ["StallingProxy", "run_stall"]

MiB = 1024 * 1024


class StallingProxy:
    """A TCP proxy that, while stalled, forwards nothing in either direction's request path."""

    chunk = 65536
    """Bytes read and forwarded at a time."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition("//")[2].partition(":")
        self._target = (host, int(port.rstrip("/")))
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.held = asyncio.Event()
        """Set once a request was held back by the stall (it is on the wire, not lost)."""

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def stall(self) -> None:
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    async def stop(self) -> None:
        self.release()
        for writer in self._writers:  # connections end with the run, not at loop shutdown
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, upstream_writer]
        # Cancelled at loop shutdown while the producer's pool keeps connections open: that
        # is this connection's end, not an error.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(
                self._pipe(reader, upstream_writer, gated=True), self._pipe(upstream_reader, writer)
            )

    async def _pace(self, nbytes: int) -> None:
        """Hold a request chunk of ``nbytes`` until it may go on (a slower link's hook)."""

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gated: bool = False
    ) -> None:
        try:
            while chunk := await reader.read(self.chunk):
                if gated:
                    if not self._flowing.is_set():
                        self.held.set()
                        await self._flowing.wait()
                    await self._pace(len(chunk))
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()


async def _stalled_run(
    endpoint: str,
    stream: str,
    stall: float,
    record_size: int,
    keys: int,
    sample: float,
    options: dict[str, Any],
) -> dict[str, Any]:
    from producers import KinesisProducer

    proxy = StallingProxy(endpoint)
    proxied = await proxy.start()
    samples: list[int] = []
    accepted = 0
    failed = 0
    sampling: asyncio.Task[None] | None = None
    try:
        async with KinesisProducer(stream, endpoint_url=proxied, **options) as producer:
            in_flight_cap = producer.config.max_in_flight_bytes
            baseline = rss_bytes()
            proxy.stall()
            stop_at = time.monotonic() + stall

            async def sampler() -> None:
                while True:
                    samples.append(rss_bytes())
                    await asyncio.sleep(sample)

            sampling = asyncio.create_task(sampler())
            deadline = asyncio.get_running_loop().time() + stall

            def count(future: asyncio.Future[Any]) -> None:
                nonlocal failed
                if future.cancelled() or future.exception() is not None:
                    failed += 1

            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    while time.monotonic() < stop_at:
                        future = await producer.send(
                            os.urandom(record_size), partition_key=f"device-{accepted % keys}"
                        )
                        future.add_done_callback(count)
                        accepted += 1
            buffered_at_release = producer.buffered
            if sampling.done():  # the sampler died: the peak would be the baseline, a wrong figure
                sampling.result()
            peak = max(samples, default=baseline)
            proxy.release()
            await asyncio.wait_for(producer.flush(), stall + 120)
    finally:
        if sampling is not None:
            sampling.cancel()
            await asyncio.gather(sampling, return_exceptions=True)
        await proxy.stop()
    return {
        "stall_seconds": stall,
        "record_size": record_size,
        "buffer_max_bytes": options["buffer_max_bytes"],
        "buffer_max_records": options["buffer_max_records"],
        "max_in_flight": options["max_in_flight"],
        "max_in_flight_bytes": in_flight_cap,
        "rss_before_mib": round(baseline / MiB, 1),
        "rss_peak_during_stall_mib": round(peak / MiB, 1),
        "rss_growth_mib": round((peak - baseline) / MiB, 1),
        "records_accepted": accepted,
        "buffered_at_release": list(buffered_at_release),
        "records_failed": failed,
    }


def run_stall(
    endpoint: str,
    *,
    stall: float = 60.0,
    record_size: int = 1000,
    keys: int = 1000,
    shards: int = 4,
    sample: float = 0.5,
    buffer_max_bytes: int = 64 * MiB,
    buffer_max_records: int = 200_000,
    record_ttl: float | None = None,
    max_in_flight: int = 8,
    max_in_flight_bytes: int | None = None,
) -> dict[str, Any]:
    """One stalled run on a fresh stream; the figures as a dict."""
    stream = f"stall-{uuid.uuid4().hex[:8]}"
    options: dict[str, Any] = {
        "admission": "caps",  # the memory bound of the caps: the most a stalled producer holds
        "rate_limit_percent": None,
        "buffer_max_bytes": buffer_max_bytes,
        "buffer_max_records": buffer_max_records,
        "record_ttl": record_ttl if record_ttl is not None else stall + 60.0,
        "max_in_flight": max_in_flight,
    }
    if max_in_flight_bytes is not None:  # else the producer's default
        options["max_in_flight_bytes"] = max_in_flight_bytes
    with fresh_stream(endpoint, stream, shards):
        return asyncio.run(_stalled_run(endpoint, stream, stall, record_size, keys, sample, options))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers.kinesis_stall", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--endpoint", required=True, help="Kinesis endpoint URL (e.g. kinesalite)")
    parser.add_argument("--stall", type=float, default=60.0, help="seconds the endpoint stalls")
    parser.add_argument("--record-size", type=int, default=1000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--buffer-mib", type=int, default=64, help="buffer_max_bytes in MiB")
    parser.add_argument("--buffer-records", type=int, default=200_000, help="buffer_max_records")
    parser.add_argument("--max-in-flight", type=int, default=8, help="concurrent PutRecords requests")
    parser.add_argument(
        "--max-in-flight-mib",
        type=float,
        default=None,
        help="max_in_flight_bytes in MiB (default: the producer's default)",
    )
    args = parser.parse_args(argv)
    result = run_stall(
        args.endpoint,
        stall=args.stall,
        record_size=args.record_size,
        keys=args.keys,
        shards=args.shards,
        buffer_max_bytes=args.buffer_mib * MiB,
        buffer_max_records=args.buffer_records,
        max_in_flight=args.max_in_flight,
        max_in_flight_bytes=None if args.max_in_flight_mib is None else int(args.max_in_flight_mib * MiB),
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
