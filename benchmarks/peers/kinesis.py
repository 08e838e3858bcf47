"""Kinesis peer comparison: Shardline's producer against the Python clients people use instead.

One client per process (``python -m benchmarks.peers.kinesis --client NAME``), so one
client's imports, caches and garbage never bill another.  Every client sends the same
workload into its own fresh stream: ``records`` payloads of ``record_size`` bytes over
``keys`` partition keys.

The timed span starts from the user's raw data and ends when every record is acknowledged.
The raw data is a list of ``(partition key, payload)`` pairs made before the span; each
payload is a 10-digit index (so the read-back can check that every record arrived once)
followed by ``os.urandom`` bytes, never one repeated value.  Every object a client's API
needs (``Record`` objects, the column lists ``send_many`` takes, request dicts, futures,
aggregators) is built inside the span, because the caller pays for it.

Reported per client: records/s and client CPU microseconds per record (user + sys of this
process over the span, which does not depend on the emulator's speed) and the part of it
spent in the garbage collector (:mod:`benchmarks.peers.gc_clock`), the 1-minute load
average when the client finished, and Kinesis entries per user record, found by reading the
stream back with boto3 + aws-kinesis-agg, which also verifies that every record arrived.

    python -m benchmarks.peers.kinesis --endpoint http://127.0.0.1:4567 --client all --repeat 3

runs every client once per repetition, one after another (A B C ... A B C ...), so drifts in
the machine's load hit all alike, and prints medians with min-max.  Ratios are taken within
each repetition, then the median (min-max) is reported: each Shardline row against the
aws-kinesis-agg row of the same aggregate size (``vs kinesis-agg``) and against the cheapest
peer of that repetition (``vs best peer``).

Clients: ``shardline-batch`` (``send_many(values, keys)`` with columns, 50 KiB aggregates,
the default and the KPL's), ``shardline-batch-1mib`` (the same with aggregates up to 1 MiB),
``shardline-batch-records`` (``send_many`` of ``Record`` objects built in the span, 50 KiB),
``shardline-send`` (per-record ``send()``, a future per record awaited one by one, 50 KiB),
``kinesis-agg`` and ``kinesis-agg-1mib`` (aws-kinesis-agg, one ``RecordAggregator`` per shard
of 50 KiB or 1 MiB, the key-to-shard lookup cached per key, boto3 put_records),
``boto3`` (put_records, 500 a call, no aggregation), ``aiokpl`` and ``async-kinesis``
(bytes passed through).  Pacing is off everywhere it can be switched off, because the
emulator does not meter shards.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from benchmarks.peers.gc_clock import GcClock
from benchmarks.process_stats import process_cpu_seconds

__all__ = ["CLIENTS", "run_peer"]

_READY_DEADLINE_SECONDS = 60.0


_INDEX_BYTES = 10
"""Each payload starts with its index as 10 ASCII digits: the read-back checks them."""

KIB_50 = 50 * 1024
MIB_1 = 1024 * 1024


def _payloads(records: int, size: int, keys: int) -> list[tuple[str, bytes]]:
    """The user's raw data: (partition key, payload), the payload an index then random bytes."""
    rest = max(size - _INDEX_BYTES, 0)
    noise = os.urandom(records * rest)
    return [(f"device-{i % keys}", b"%010d" % i + noise[i * rest : (i + 1) * rest]) for i in range(records)]


def _boto3(endpoint: str) -> Any:
    import boto3

    return boto3.client("kinesis", endpoint_url=endpoint)


def _setup_client(endpoint: str) -> Any:
    """A boto3 client for the harness's own calls (stream set-up, read-back, deletion), in a
    session of its own.

    ``boto3.client`` keeps its session, and the session the JSON it loaded (~28,000 objects:
    the endpoints file, the service model), for the rest of the process.  In the measured
    process that heap belongs to no client; yet a client whose collector runs full
    collections (one future per record) walked it at each one.  A session of its own goes
    with the client.
    """
    import boto3

    return boto3.session.Session().client("kinesis", endpoint_url=endpoint)


def _ensure_stream(endpoint: str, stream: str, shards: int) -> None:
    client = _setup_client(endpoint)
    with contextlib.suppress(client.exceptions.ResourceInUseException):
        client.create_stream(StreamName=stream, ShardCount=shards)
    deadline = time.monotonic() + _READY_DEADLINE_SECONDS
    while (
        client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
        != "ACTIVE"
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(f"stream {stream} never became ACTIVE")
        time.sleep(0.05)  # the emulator offers no notification; bounded poll


@contextlib.contextmanager
def fresh_stream(endpoint: str, stream: str, shards: int) -> Iterator[str]:
    """``stream``, created and ACTIVE for one run, deleted after it (errors of the deletion
    ignored): the emulators limit the shards an account may hold."""
    _ensure_stream(endpoint, stream, shards)
    try:
        yield stream
    finally:
        with contextlib.suppress(Exception):
            client = _setup_client(endpoint)
            client.delete_stream(StreamName=stream)


def _read_back(endpoint: str, stream: str) -> tuple[int, set[bytes]]:
    """(Kinesis entries, distinct 10-byte record indexes) found in the stream."""
    from aws_kinesis_agg.deaggregator import iter_deaggregate_records

    client = _setup_client(endpoint)
    entries = 0
    seen: set[bytes] = set()
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=10_000)
            for raw in response["Records"]:
                entries += 1
                for user in iter_deaggregate_records([raw], data_format="Boto3"):
                    kinesis = user["kinesis"]
                    data = base64.b64decode(kinesis["data"]) if kinesis.get("aggregated") else kinesis["data"]
                    seen.add(bytes(data[:10]))
            iterator = response.get("NextShardIterator")
            if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
                break
    return entries, seen


# --- the clients: each sends everything and returns once every record is acknowledged ----------

Workload = list[tuple[str, bytes]]
Timed = Callable[[], None]


async def _shardline(
    endpoint: str,
    stream: str,
    work: Workload,
    start: Timed,
    shape: str,
    aggregate_bytes: int = KIB_50,
) -> None:
    """Shardline's producer; ``shape`` is "columns", "records" (send_many) or "send"."""
    from producers import KinesisProducer
    from shardline.records import Record

    options: dict[str, Any] = {"rate_limit_percent": None, "aggregate_max_bytes": aggregate_bytes}
    async with KinesisProducer(stream, endpoint_url=endpoint, **options) as producer:
        start()
        if shape == "send":
            send = producer.send
            futures = [await send(data, partition_key=key) for key, data in work]
            await producer.flush()
            # Awaited one by one (as the aiokpl client does with its outcomes):
            # asyncio.gather would add a done-callback per future to the measurement.
            acked = 0
            for future in futures:
                await future
                acked += 1
            assert acked == len(work)
            return
        if shape == "records":
            acks = await (await producer.send_many([Record(data, key) for key, data in work]))
        else:
            values = [data for _, data in work]
            keys = [key for key, _ in work]
            acks = await (await producer.send_many(values, keys))
        if not acks.ok:
            raise RuntimeError(f"{len(acks.failed)} records failed")


def _put_all(client: Any, stream: str, entries: list[dict[str, Any]]) -> None:
    """put_records in calls of at most 500 entries and 5 MiB, resending failed entries."""
    pending = entries
    while pending:
        batch: list[dict[str, Any]] = []
        size = 0
        rest_from = 0
        for rest_from, entry in enumerate(pending):  # noqa: B007 - the index is used after the loop
            entry_size = len(entry["Data"]) + len(entry["PartitionKey"])
            if len(batch) == 500 or size + entry_size > 5 * 1024 * 1024:
                break
            batch.append(entry)
            size += entry_size
        else:
            rest_from = len(pending)
        response = client.put_records(StreamName=stream, Records=batch)
        failed = [e for e, r in zip(batch, response["Records"], strict=True) if "ErrorCode" in r]
        pending = failed + pending[rest_from:]


async def _boto3_plain(endpoint: str, stream: str, work: Workload, start: Timed) -> None:
    client = _boto3(endpoint)
    start()
    _put_all(client, stream, [{"Data": data, "PartitionKey": key} for key, data in work])


async def _kinesis_agg(
    endpoint: str, stream: str, work: Workload, start: Timed, max_size: int = KIB_50
) -> None:
    """aws-kinesis-agg: one aggregator per shard (the KPL's way), the shard looked up once per key."""
    import hashlib

    from aws_kinesis_agg.aggregator import RecordAggregator

    client = _boto3(endpoint)
    shards = client.list_shards(StreamName=stream)["Shards"]
    starts = sorted((int(s["HashKeyRange"]["StartingHashKey"]), i) for i, s in enumerate(shards))
    start()
    aggregators = [RecordAggregator(max_size=max_size) for _ in shards]
    shard_of: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    for key, data in work:
        index = shard_of.get(key)
        if index is None:
            hash_key = int.from_bytes(hashlib.md5(key.encode(), usedforsecurity=False).digest(), "big")
            index = shard_of[key] = next(i for first, i in reversed(starts) if first <= hash_key)
        full = aggregators[index].add_user_record(key, data)
        if full is not None:
            out.append(_agg_entry(full.get_contents()))
    for aggregator in aggregators:
        rest = aggregator.clear_and_get()
        if rest is not None:
            out.append(_agg_entry(rest.get_contents()))
    _put_all(client, stream, out)


def _agg_entry(contents: tuple[str, str | None, bytes]) -> dict[str, Any]:
    pk, ehk, blob = contents
    entry: dict[str, Any] = {"Data": blob, "PartitionKey": pk}
    if ehk is not None:
        entry["ExplicitHashKey"] = ehk
    return entry


async def _aiokpl(endpoint: str, stream: str, work: Workload, start: Timed) -> None:
    from aiokpl import Config, Producer  # type: ignore[import-untyped]

    config = Config(
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        endpoint_url=endpoint,
        rate_limit_records_per_sec_per_shard=1e9,
        rate_limit_bytes_per_sec_per_shard=1e12,
        max_outstanding_records=len(work) + 1,
    )
    async with Producer(config) as producer:
        start()
        outcomes = [
            await producer.put_record(stream=stream, partition_key=key, data=data) for key, data in work
        ]
        await producer.flush()
        for outcome in outcomes:
            result = await outcome.wait()
            if not result.success:
                raise RuntimeError("aiokpl reported a failed record")


async def _async_kinesis(endpoint: str, stream: str, work: Workload, start: Timed) -> None:
    from kinesis import Producer  # type: ignore[import-untyped]
    from kinesis.aggregators import SimpleAggregator  # type: ignore[import-untyped]
    from kinesis.processors import Processor  # type: ignore[import-untyped]

    class BytesProcessor(Processor, SimpleAggregator):  # type: ignore[misc]
        """One record per entry, the payload bytes passed through (its StringProcessor wants str)."""

        def serialize(self, item: bytes) -> bytes:
            return item

        def deserialize(self, data: bytes) -> bytes:
            return data

    async with Producer(
        stream,
        endpoint_url=endpoint,
        processor=BytesProcessor(),
        put_rate_limit_per_shard=10**9,
        put_bandwidth_limit_per_shard=10**9,
        max_queue_size=len(work) + 1,
    ) as producer:
        start()
        for key, data in work:
            await producer.put(data, partition_key=key)
        await producer.flush()


ClientFn = Callable[[str, str, Workload, Timed], Coroutine[Any, Any, None]]

CLIENTS: dict[str, ClientFn] = {
    "shardline-batch": lambda e, s, w, t: _shardline(e, s, w, t, "columns"),
    "shardline-batch-1mib": lambda e, s, w, t: _shardline(e, s, w, t, "columns", MIB_1),
    "shardline-batch-records": lambda e, s, w, t: _shardline(e, s, w, t, "records"),
    "shardline-send": lambda e, s, w, t: _shardline(e, s, w, t, "send"),
    "kinesis-agg": _kinesis_agg,
    "kinesis-agg-1mib": lambda e, s, w, t: _kinesis_agg(e, s, w, t, MIB_1),
    "boto3": _boto3_plain,
    "aiokpl": _aiokpl,
    "async-kinesis": _async_kinesis,
}

SAME_SIZE_PEER = {
    "shardline-batch": "kinesis-agg",
    "shardline-batch-1mib": "kinesis-agg-1mib",
    "shardline-batch-records": "kinesis-agg",
    "shardline-send": "kinesis-agg",
}
"""Each Shardline client's aws-kinesis-agg counterpart: the same aggregate size."""


def run_peer(
    name: str, endpoint: str, stream: str, records: int, record_size: int, keys: int, shards: int
) -> dict[str, Any]:
    """Run one client in this process and return its measurements (verified by read-back)."""
    client = CLIENTS[name]
    marks: dict[str, float] = {}
    collector = GcClock()

    def start() -> None:
        marks["tracked"] = len(gc.get_objects())
        marks["cpu"], marks["wall"] = process_cpu_seconds(), time.perf_counter()
        collector.start()

    with fresh_stream(endpoint, stream, shards):
        work = _payloads(records, record_size, keys)
        gc.collect()  # the set-up's client and session (reference cycles) gone before any span
        asyncio.run(client(endpoint, stream, work, start))
        wall = time.perf_counter() - marks["wall"]
        cpu = process_cpu_seconds() - marks["cpu"]
        collector.stop()
        entries, seen = _read_back(endpoint, stream)
    return {
        "client": name,
        "records": records,
        "record_size": record_size,
        "keys": keys,
        "shards": shards,
        "records_per_second": round(records / wall),
        "cpu_us_per_record": round(cpu / records * 1e6, 2),
        **collector.report(records, "record"),
        "tracked_objects_at_start": int(marks["tracked"]),
        "kinesis_entries": entries,
        "entries_per_record": round(entries / records, 5),
        "verified": len(seen) == records,
        "load_1m": round(os.getloadavg()[0], 2),
    }


_PEERS = ("kinesis-agg", "kinesis-agg-1mib", "boto3", "aiokpl", "async-kinesis")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _spread(values: list[float], digits: int = 2, suffix: str = "") -> str:
    """``median (min-max)`` of ``values``, or ``-`` when there are none."""
    if not values:
        return "-"
    return f"{_median(values):.{digits}f}{suffix} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def _counts(result: dict[str, Any]) -> bool:
    """Whether a run's figures count: it finished and its read-back found every record.

    A client that lost records did less work than the others in its span, so it looks
    faster and cheaper than it is; it counts neither as a figure nor as a baseline."""
    return "error" not in result and result.get("verified") is True


def _ratios(runs: list[list[dict[str, Any]]]) -> dict[str, dict[str, list[float]]]:
    """Per client, ratios taken within each repetition: CPU and rate against the same-size
    aws-kinesis-agg row, CPU against the cheapest peer of that repetition (verified runs only)."""
    out: dict[str, dict[str, list[float]]] = {}
    for rep in runs:
        ok = {r["client"]: r for r in rep if _counts(r)}
        peers = [ok[p]["cpu_us_per_record"] for p in _PEERS if p in ok]
        best = min(peers) if peers else None
        for client, row in ok.items():
            ratios = out.setdefault(client, {"cpu_vs_agg": [], "rate_vs_agg": [], "cpu_vs_best": []})
            twin = ok.get(SAME_SIZE_PEER.get(client, ""))
            if twin is not None:
                ratios["cpu_vs_agg"].append(row["cpu_us_per_record"] / twin["cpu_us_per_record"])
                ratios["rate_vs_agg"].append(row["records_per_second"] / twin["records_per_second"])
            if best:
                ratios["cpu_vs_best"].append(row["cpu_us_per_record"] / best)
    return out


def _table(runs: list[list[dict[str, Any]]]) -> str:
    """Medians (min-max) over the verified repetitions; ratios within each repetition, then the
    median.  The last column says how many runs failed or lost records (left out of both)."""
    by_client: dict[str, list[dict[str, Any]]] = {}
    for rep in runs:
        for r in rep:
            by_client.setdefault(r["client"], []).append(r)
    ratios = _ratios(runs)
    lines = [
        "| client | rec/s (min-max) | CPU-us/record (min-max) | of which GC | CPU vs kinesis-agg same size | "
        "rec/s vs kinesis-agg same size | CPU vs best peer | Kinesis entries | verified |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    loads: list[float] = []
    for client, results in by_client.items():
        ok_results = [r for r in results if _counts(r)]
        if not ok_results:
            why = results[0].get("error") or "read-back found records missing"
            lines.append(f"| {client} | - | - | - | - | - | - | - | failed: {why} |")
            continue
        loads += [r["load_1m"] for r in ok_results if "load_1m" in r]
        cpu = [r["cpu_us_per_record"] for r in ok_results]
        collected = [r.get("gc_us_per_record", 0.0) for r in ok_results]
        rate = [float(r["records_per_second"]) for r in ok_results]
        entries = _median([r["kinesis_entries"] for r in ok_results])
        mine = ratios.get(client, {})
        left_out = len(results) - len(ok_results)
        verified = (
            f"NO: {left_out} of {len(results)} runs failed or lost records, left out" if left_out else "yes"
        )
        lines.append(
            f"| {client} | {_spread(rate, 0)} | {_spread(cpu)} | {_spread(collected)} | "
            f"{_spread(mine.get('cpu_vs_agg', []), suffix='x')} | "
            f"{_spread(mine.get('rate_vs_agg', []), suffix='x')} | "
            f"{_spread(mine.get('cpu_vs_best', []), suffix='x')} | {entries:,.0f} | "
            f"{verified} |"
        )
    if loads:
        lines.append(f"\n1-minute load average when each client finished: {min(loads):.2f}-{max(loads):.2f}")
    return "\n".join(lines)


def _run_in_process(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One client in a child process; a child that gives no result within
    ``--client-timeout`` seconds is killed and reported as this client's error, so one stuck
    client (an outcome that never resolves, a request that never returns) cannot hold the
    whole table."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.peers.kinesis",
        "--client",
        name,
        "--endpoint",
        args.endpoint,
    ]
    command += ["--records", str(args.records), "--record-size", str(args.record_size)]
    command += ["--keys", str(args.keys), "--shards", str(args.shards)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=args.client_timeout
        )
    except subprocess.TimeoutExpired:  # subprocess.run has killed the child
        return {"client": name, "error": f"no result within {args.client_timeout:g} s; process stopped"}
    if done.returncode == 0:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"client": name, "error": last[:120]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers.kinesis", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--client", default="all", choices=["all", *CLIENTS])
    parser.add_argument("--endpoint", required=True, help="Kinesis endpoint URL (e.g. kinesalite)")
    parser.add_argument("--stream", help="stream name (default: a fresh one per client)")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--record-size", type=int, default=100)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of the whole table (medians)")
    parser.add_argument(
        "--client-timeout", type=float, default=600.0, help="seconds before a stuck client is stopped"
    )
    args = parser.parse_args(argv)
    if args.client != "all":
        stream = args.stream or f"peer-{args.client}-{uuid.uuid4().hex[:8]}"
        result = run_peer(
            args.client, args.endpoint, stream, args.records, args.record_size, args.keys, args.shards
        )
        print(json.dumps(result))
        return 0 if _counts(result) else 1
    runs: list[list[dict[str, Any]]] = []
    for repetition in range(args.repeat):
        rep: list[dict[str, Any]] = []
        for name in CLIENTS:  # every client once per repetition, so load drifts hit all alike
            result = _run_in_process(name, args)
            result["repetition"] = repetition
            rep.append(result)
            print(json.dumps(result), file=sys.stderr, flush=True)
        runs.append(rep)
    print(_table(runs))
    # a failed or unverified run is left out of the table: the status says one was
    return 0 if all(_counts(result) for rep in runs for result in rep) else 1


if __name__ == "__main__":
    raise SystemExit(main())
