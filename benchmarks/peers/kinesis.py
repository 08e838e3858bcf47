"""Kinesis peer comparison: Shardline's producer against the Python clients people use instead.

One client per process (``python -m benchmarks.peers.kinesis --client NAME``), so one
client's imports, caches and garbage never bill another.  Every client sends the same
workload into its own fresh stream: ``records`` unique payloads of ``record_size`` bytes
over ``keys`` partition keys.  Reported: records/s and client CPU microseconds per record
(user + sys of this process from the first submit to the last acknowledgement, which does
not depend on the emulator's speed), and Kinesis entries per user record, found by reading
the stream back with boto3 + aws-kinesis-agg, which also verifies that every record arrived.

    python -m benchmarks.peers.kinesis --endpoint http://127.0.0.1:4567 --client all

Clients: ``shardline-batch`` (``send_many``, the default 50 KiB aggregates),
``shardline-batch-1mib`` (``send_many`` with aggregates up to the 1 MiB record limit, like the
aws-kinesis-agg row), ``shardline-send`` (per-record ``send()``),
``boto3`` (put_records, 500 a call), ``kinesis-agg`` (aws-kinesis-agg, one aggregator per
shard, boto3 put_records), ``aiokpl`` and ``async-kinesis``.  Pacing is off everywhere it can
be switched off, because the emulator does not meter shards.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["CLIENTS", "run_peer"]

_READY_DEADLINE_SECONDS = 60.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _payloads(records: int, size: int, keys: int) -> list[tuple[str, bytes]]:
    """(partition key, data): each payload starts with its index, so the read-back can check it."""
    pad = b"x" * max(size - 10, 0)
    return [(f"device-{i % keys}", b"%010d" % i + pad) for i in range(records)]


def _boto3(endpoint: str) -> Any:
    import boto3

    return boto3.client("kinesis", endpoint_url=endpoint)


def _ensure_stream(endpoint: str, stream: str, shards: int) -> None:
    client = _boto3(endpoint)
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


def _read_back(endpoint: str, stream: str) -> tuple[int, set[bytes]]:
    """(Kinesis entries, distinct 10-byte record indexes) found in the stream."""
    from aws_kinesis_agg.deaggregator import iter_deaggregate_records

    client = _boto3(endpoint)
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
    per_record: bool,
    aggregate_bytes: int | None = None,
) -> None:
    from producers import KinesisProducer
    from shardline.records import Record

    options: dict[str, Any] = {"rate_limit_percent": None}
    if aggregate_bytes is not None:
        options["aggregate_max_bytes"] = aggregate_bytes
    async with KinesisProducer(stream, endpoint_url=endpoint, **options) as producer:
        if per_record:
            start()
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
        else:
            records = [Record(data, partition_key=key) for key, data in work]
            start()
            acks = await (await producer.send_many(records))
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


async def _kinesis_agg(endpoint: str, stream: str, work: Workload, start: Timed) -> None:
    import hashlib

    from aws_kinesis_agg.aggregator import RecordAggregator

    client = _boto3(endpoint)
    shards = client.list_shards(StreamName=stream)["Shards"]
    starts = sorted((int(s["HashKeyRange"]["StartingHashKey"]), i) for i, s in enumerate(shards))
    start()
    aggregators = [RecordAggregator() for _ in shards]
    out: list[dict[str, Any]] = []
    for key, data in work:
        hash_key = int.from_bytes(hashlib.md5(key.encode(), usedforsecurity=False).digest(), "big")
        index = next(i for first, i in reversed(starts) if first <= hash_key)
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
    from kinesis.processors import StringProcessor  # type: ignore[import-untyped]

    texts = [(key, data.decode()) for key, data in work]
    async with Producer(
        stream,
        endpoint_url=endpoint,
        processor=StringProcessor(),
        put_rate_limit_per_shard=10**9,
        put_bandwidth_limit_per_shard=10**9,
        max_queue_size=len(work) + 1,
    ) as producer:
        start()
        for key, text in texts:
            await producer.put(text, partition_key=key)
        await producer.flush()


ClientFn = Callable[[str, str, Workload, Timed], Coroutine[Any, Any, None]]

CLIENTS: dict[str, ClientFn] = {
    "shardline-batch": lambda e, s, w, t: _shardline(e, s, w, t, per_record=False),
    "shardline-batch-1mib": lambda e, s, w, t: _shardline(
        e, s, w, t, per_record=False, aggregate_bytes=1024 * 1024
    ),
    "shardline-send": lambda e, s, w, t: _shardline(e, s, w, t, per_record=True),
    "boto3": _boto3_plain,
    "kinesis-agg": _kinesis_agg,
    "aiokpl": _aiokpl,
    "async-kinesis": _async_kinesis,
}


def run_peer(
    name: str, endpoint: str, stream: str, records: int, record_size: int, keys: int, shards: int
) -> dict[str, Any]:
    """Run one client in this process and return its measurements (verified by read-back)."""
    client = CLIENTS[name]
    _ensure_stream(endpoint, stream, shards)
    work = _payloads(records, record_size, keys)
    marks: dict[str, float] = {}

    def start() -> None:
        marks["cpu"], marks["wall"] = _cpu(), time.perf_counter()

    asyncio.run(client(endpoint, stream, work, start))
    wall = time.perf_counter() - marks["wall"]
    cpu = _cpu() - marks["cpu"]
    entries, seen = _read_back(endpoint, stream)
    with contextlib.suppress(Exception):  # keep the emulator under its account shard limit
        _boto3(endpoint).delete_stream(StreamName=stream)
    return {
        "client": name,
        "records": records,
        "record_size": record_size,
        "keys": keys,
        "shards": shards,
        "records_per_second": round(records / wall),
        "cpu_us_per_record": round(cpu / records * 1e6, 2),
        "kinesis_entries": entries,
        "entries_per_record": round(entries / records, 5),
        "verified": len(seen) == records,
    }


_PEERS = ("boto3", "kinesis-agg", "aiokpl", "async-kinesis")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _table(runs: list[list[dict[str, Any]]]) -> str:
    """Medians over the repetitions; ratios are taken within each repetition, then the median."""
    by_client: dict[str, list[dict[str, Any]]] = {}
    ratios: dict[str, list[float]] = {}
    for rep in runs:
        ok = {r["client"]: r for r in rep if "error" not in r}
        peers = [ok[p]["cpu_us_per_record"] for p in _PEERS if p in ok]
        best = min(peers) if peers else None
        for r in rep:
            by_client.setdefault(r["client"], []).append(r)
            if "error" not in r and best:
                ratios.setdefault(r["client"], []).append(r["cpu_us_per_record"] / best)
    lines = [
        "| client | rec/s | client CPU-us/record (min-max) | vs best peer | Kinesis entries | verified |",
        "|---|---|---|---|---|---|",
    ]
    for client, results in by_client.items():
        ok_results = [r for r in results if "error" not in r]
        if not ok_results:
            lines.append(f"| {client} | - | - | - | - | failed: {results[0]['error']} |")
            continue
        cpu = [r["cpu_us_per_record"] for r in ok_results]
        rate = _median([r["records_per_second"] for r in ok_results])
        entries = _median([r["kinesis_entries"] for r in ok_results])
        ratio = _median(ratios.get(client, []))
        verified = all(r["verified"] for r in ok_results) and len(ok_results) == len(results)
        lines.append(
            f"| {client} | {rate:,.0f} | {_median(cpu):.2f} ({min(cpu):.2f}-{max(cpu):.2f}) | "
            f"{ratio:.2f}x | {entries:,.0f} | {'yes' if verified else 'NO'} |"
        )
    return "\n".join(lines)


def _run_in_process(name: str, args: argparse.Namespace) -> dict[str, Any]:
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
    done = subprocess.run(command, capture_output=True, text=True, check=False)
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
    args = parser.parse_args(argv)
    if args.client != "all":
        stream = args.stream or f"peer-{args.client}-{uuid.uuid4().hex[:8]}"
        result = run_peer(
            args.client, args.endpoint, stream, args.records, args.record_size, args.keys, args.shards
        )
        print(json.dumps(result))
        return 0
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
