"""Kinesis polling read against its peer: GetRecords, de-aggregation, user records handed over.

One command reproduces the table in docs/performance.md::

    python -m benchmarks.peers.kinesis_read --endpoint http://127.0.0.1:4567 \\
        --records 200000 --keys 1000 --shards 4 --repeat 3

What it does:

1. Fills a fresh stream once, untimed, with Shardline's :class:`~producers.KinesisProducer`
   (KPL aggregation on, its default 50 KiB aggregates): ``records`` random payloads of
   ``record_size`` bytes (``os.urandom``, never one repeated value) over ``keys`` partition
   keys.  ``--plain`` fills a second stream without aggregation and reads that one too.
2. Runs every reader in its own spawned process, one after another, interleaved per repetition
   (peer, Shardline, peer, Shardline...), each reading every shard from TRIM_HORIZON until it
   has all the records:

   * ``boto3-agg`` (the peer): a boto3 ``get_records`` loop (``Limit=10000``) over the shards
     and ``aws_kinesis_agg.deaggregator.iter_deaggregate_records(..., data_format="Boto3")``,
     each user record turned into ``(data bytes, partition key, sequence number,
     sub-sequence number)`` (aws-kinesis-agg hands de-aggregated data base64-encoded, the
     Lambda event shape, so the bytes are decoded: a user needs them);
   * ``shardline``: :class:`~consumers.kinesis.KinesisSource` in polling mode as the pipeline
     uses it (``batches()``, its own client built from the environment as ``shardline
     consume`` has it, leases in a :class:`~consumers.checkpoint.MemoryCheckpointStore`, no
     checkpoints written, no sink), records handed over as batches of
     :class:`~shardline.records.ConsumedRecord`.

   The timed span runs from the first GetRecords call to the moment the last record is handed
   over; client CPU = user + sys of the reader process over the span (``resource.getrusage``),
   reported per user record.  Setting up (client, ListShards, leases, the first iterators) is
   outside the span for the peer; for Shardline the iterators of shards other than the first
   may fall inside it (a few calls, included in its figure).  Every record handed over is
   kept and checked after the span: the count, unique (sequence, sub-sequence) positions, and
   a digest of every (partition key, data) pair against the fill's.
   ``--consumer-work`` adds, inside the span, what a sink does first with every batch while
   it is alive: one dict per record (data, partition key, position), the same for both
   readers; this shows the readers' records under a consumer's allocations (Shardline's
   records are objects the garbage collector tracks, the peer's are tuples it stops tracking).
3. Reports per reader the median CPU-us per user record with min-max, records/s, and the
   Shardline/peer CPU ratio taken within each repetition (median, min-max), plus the load
   average at start and end: compare within one run only.

Shardline's reader keeps its GetRecords budget (5 calls/s per shard, the service limit); it
bounds records/s on large aggregates but not the CPU per record.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import statistics
import sys
import time
import uuid
import zlib
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, cast

from benchmarks.peers.kinesis import _boto3, _ensure_stream
from benchmarks.peers.runner import spawned_result
from benchmarks.process_stats import process_cpu_seconds
from shardline.gcpause import collector_paused

__all__ = ["READERS", "Receiver", "digest", "fill_stream", "main", "read_in_child", "run_benchmark"]

PEER = "boto3-agg"
SHARDLINE = "shardline"
_READ_DEADLINE_SECONDS = 300.0
_CHILD_TIMEOUT_SECONDS = 600.0


def digest(pairs: Sequence[tuple[str, bytes]]) -> int:
    """Order-independent digest of (partition key, data) pairs: what a reader must give back."""
    total = 0
    for key, data in pairs:
        total += zlib.crc32(data, zlib.crc32(key.encode("utf-8")))
    return total


def workload(records: int, record_size: int, keys: int, seed: int = 1) -> list[tuple[str, bytes]]:
    """``records`` (partition key, random payload) pairs over ``keys`` keys."""
    rng = random.Random(seed)
    names = [f"device-{index:05d}" for index in range(keys)]
    return [(names[rng.randrange(keys)], os.urandom(record_size)) for _ in range(records)]


def fill_stream(
    endpoint: str, stream: str, shards: int, pairs: Sequence[tuple[str, bytes]], *, aggregate: bool = True
) -> None:
    """Create ``stream`` and write ``pairs`` with Shardline's producer (untimed)."""
    from producers import KinesisProducer
    from shardline.records import Record

    _ensure_stream(endpoint, stream, shards)

    async def fill() -> None:
        async with KinesisProducer(
            stream, endpoint_url=endpoint, rate_limit_percent=None, aggregate=aggregate
        ) as producer:
            acks = await (await producer.send_many([Record(data, partition_key=key) for key, data in pairs]))
            if not acks.ok:
                raise RuntimeError(f"fill: {len(acks.failed)} records failed")

    asyncio.run(fill())


# --- the readers: each hands every batch to a Receiver and returns (span wall s, span CPU s) -----


class Receiver:
    """Takes the batches a reader hands over and checks them, keeping none of the records.

    Checking is not the reader's work: the CPU it takes is measured per batch and left out of
    the span.  It runs with the cyclic collector paused, so it neither runs a collection the
    reader's allocations made due (which would hide reader work in the excluded part) nor
    adds collector work of its own to the span.  Records are complete objects when handed
    over, so nothing the reader owes is billed to the check.  Keeping every record until the
    end would instead bill the readers for the collector walking a growing heap, which no
    streaming consumer has.
    """

    def __init__(
        self,
        fields: Callable[[Any], list[tuple[bytes, str, str, int]]],
        entries: Callable[[Any], list[dict[str, Any]]] | None = None,
    ) -> None:
        self._fields = fields
        self._entries = entries
        self.count = 0
        self.batches = 0
        self.digest = 0
        self.positions: set[str] = set()  # str, not tuples: nothing for the collector to track
        self.excluded_cpu = 0.0

    def __call__(self, batch: Any) -> None:
        if self._entries is not None:
            # --consumer-work: what a sink does first, inside the span, with the batch alive
            self._entries(batch)
        cpu0 = process_cpu_seconds()
        with collector_paused():
            records = self._fields(batch)
            self.count += len(records)
            self.batches += 1
            self.digest += digest([(key, data) for data, key, _, _ in records])
            self.positions.update(f"{sequence}/{sub}" for _, _, sequence, sub in records)
            del records
        self.excluded_cpu += process_cpu_seconds() - cpu0


Span = tuple[float, float]


def _read_peer(endpoint: str, stream: str, receiver: Receiver, expected: int) -> Span:
    """boto3 GetRecords + aws-kinesis-agg, the way its README shows with boto3."""
    from aws_kinesis_agg.deaggregator import iter_deaggregate_records

    client = _boto3(endpoint)
    throttled = client.exceptions.ProvisionedThroughputExceededException
    shard_ids = [shard["ShardId"] for shard in client.list_shards(StreamName=stream)["Shards"]]
    iterators: dict[str, str | None] = {
        shard_id: client.get_shard_iterator(
            StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for shard_id in shard_ids
    }
    b64decode = base64.b64decode
    deadline = time.monotonic() + _READ_DEADLINE_SECONDS
    wall0, cpu0 = time.perf_counter(), process_cpu_seconds()
    while receiver.count < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"peer read {receiver.count} of {expected} records")
        for shard_id, iterator in iterators.items():
            if iterator is None:
                continue
            try:
                response = client.get_records(ShardIterator=iterator, Limit=10_000)
            except throttled:
                time.sleep(0.2)
                continue
            batch = []
            for user in iter_deaggregate_records(response["Records"], data_format="Boto3"):
                kinesis = user["kinesis"]
                data = b64decode(kinesis["data"]) if kinesis.get("aggregated") else kinesis["data"]
                sub_sequence = kinesis.get("subSequenceNumber", 0)
                batch.append((data, kinesis["partitionKey"], kinesis["sequenceNumber"], sub_sequence))
            receiver(batch)
            iterators[shard_id] = response.get("NextShardIterator")
    return time.perf_counter() - wall0, process_cpu_seconds() - cpu0


class _SpanStart:
    """Metrics observer that marks the span's start at the first GetRecords call."""

    def __init__(self) -> None:
        self.wall: float | None = None
        self.cpu: float | None = None

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        if self.wall is None and name == "get_records_calls":
            self.wall, self.cpu = time.perf_counter(), process_cpu_seconds()


def _read_shardline(endpoint: str, stream: str, receiver: Receiver, expected: int) -> Span:
    """KinesisSource (polling) as the pipeline reads it: batches of ConsumedRecords."""
    from consumers.checkpoint import MemoryCheckpointStore
    from consumers.kinesis import KinesisSource

    async def read() -> Span:
        start = _SpanStart()
        # The source builds its own client, as `shardline consume` has it do.
        os.environ["AWS_ENDPOINT_URL_KINESIS"] = endpoint
        source = KinesisSource(stream, store=MemoryCheckpointStore(), owner="bench-reader", observer=start)
        reading = cast(AsyncGenerator[Any, None], source.batches())  # an async generator
        async with source, contextlib.aclosing(reading) as batches:
            async with asyncio.timeout(_READ_DEADLINE_SECONDS):
                async for batch in batches:
                    receiver(batch.records)
                    if receiver.count >= expected:
                        break
            wall, cpu = time.perf_counter(), process_cpu_seconds()
        assert start.wall is not None and start.cpu is not None
        return wall - start.wall, cpu - start.cpu

    return asyncio.run(read())


def _peer_fields(batch: Any) -> list[tuple[bytes, str, str, int]]:
    return list(batch)


def _shardline_fields(batch: Any) -> list[tuple[bytes, str, str, int]]:
    return [
        (r.data, r.partition_key, r.position.sequence_number, r.position.sub_sequence_number) for r in batch
    ]


def _peer_entries(batch: Any) -> list[dict[str, Any]]:
    return [
        {"Data": data, "PartitionKey": key, "Position": (sequence, sub)} for data, key, sequence, sub in batch
    ]


def _shardline_entries(batch: Any) -> list[dict[str, Any]]:
    return [{"Data": r.data, "PartitionKey": r.partition_key, "Position": r.position} for r in batch]


Reader = Callable[[str, str, Receiver, int], Span]
Fields = Callable[[Any], list[tuple[bytes, str, str, int]]]
Entries = Callable[[Any], list[dict[str, Any]]]
READERS: dict[str, tuple[Reader, Fields, Entries]] = {
    PEER: (_read_peer, _peer_fields, _peer_entries),
    SHARDLINE: (_read_shardline, _shardline_fields, _shardline_entries),
}


def read_in_child(
    reader: str, endpoint: str, stream: str, expected: int, expected_digest: int, consumer_work: bool = False
) -> dict[str, Any]:
    """Run one reader in this process; its figures, and whether it gave back exactly the fill."""
    read, fields, entries = READERS[reader]
    receiver = Receiver(fields, entries if consumer_work else None)
    wall, cpu = read(endpoint, stream, receiver, expected)
    cpu -= receiver.excluded_cpu
    verified = receiver.count == expected and len(receiver.positions) == expected
    verified = verified and receiver.digest == expected_digest
    return {
        "reader": reader,
        "records": receiver.count,
        "batches": receiver.batches,
        "seconds": round(wall, 4),
        "records_per_second": round(receiver.count / wall) if wall > 0 else 0,
        "cpu_us_per_record": round(cpu / max(receiver.count, 1) * 1e6, 3),
        "check_cpu_us_per_record": round(receiver.excluded_cpu / max(receiver.count, 1) * 1e6, 3),
        "verified": verified,
    }


def _child(results: Any, *args: Any) -> None:
    try:
        results.put(read_in_child(*args))
    except Exception as exc:  # noqa: BLE001 - reported as this reader's row
        results.put({"reader": args[0], "error": f"{type(exc).__name__}: {exc}"})


def _spawned(
    reader: str, endpoint: str, stream: str, expected: int, expected_digest: int, consumer_work: bool
) -> dict[str, Any]:
    """One reader in a fresh spawned process; a child that dies or hangs is reported, not waited on."""
    args = (reader, endpoint, stream, expected, expected_digest, consumer_work)
    result, failure = spawned_result(_child, *args, timeout=_CHILD_TIMEOUT_SECONDS)
    if failure is not None:
        return {"reader": reader, "error": f"reader {failure}"}
    row: dict[str, Any] = result
    return row


def _median_range(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _unverified(run: dict[str, Any]) -> bool:
    """A run that finished but did not give back exactly the fill."""
    return "error" not in run and not run.get("verified")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (stream kind, reader): CPU-us/record and rec/s medians with min-max, and the ratio
    Shardline/peer taken within each repetition.

    Only verified runs count: a reader that handed over duplicates or wrong records in place
    of the fill reached its count early and looks cheap, so such a run is left out of the
    medians and of every ratio (``unverified`` counts them)."""
    summary: dict[str, Any] = {}
    for kind in sorted({run["kind"] for run in runs}):
        rows = [run for run in runs if run["kind"] == kind and not _unverified(run)]
        per_reader: dict[str, Any] = {}
        for reader in READERS:
            ok = [r for r in rows if r["reader"] == reader and "error" not in r]
            unverified = sum(
                1 for r in runs if r["kind"] == kind and r["reader"] == reader and _unverified(r)
            )
            per_reader[reader] = {
                "runs": len([r for r in runs if r["kind"] == kind and r["reader"] == reader]),
                "ok": len(ok),
                "unverified": unverified,
                "verified": bool(ok) and not unverified,
                "cpu_us_per_record": _median_range([r["cpu_us_per_record"] for r in ok]),
                "records_per_second": _median_range([r["records_per_second"] for r in ok]),
            }
        ratios = []
        for repetition in sorted({r["repetition"] for r in rows}):
            pair = {r["reader"]: r for r in rows if r["repetition"] == repetition and "error" not in r}
            if PEER in pair and SHARDLINE in pair:
                ratios.append(pair[SHARDLINE]["cpu_us_per_record"] / pair[PEER]["cpu_us_per_record"])
        summary[kind] = {"readers": per_reader, "shardline_vs_peer_cpu": _median_range(ratios)}
    return summary


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| stream | reader | CPU-us / user record, median (min-max) | rec/s, median | vs peer (min-max) |",
        "|---|---|---|---|---|",
    ]
    for kind, block in summary.items():
        ratio = block["shardline_vs_peer_cpu"]
        for reader, row in block["readers"].items():
            cpu = row["cpu_us_per_record"]
            rate = row["records_per_second"]
            if cpu is None or rate is None:
                lost = f", {row['unverified']} run(s) NOT VERIFIED" if row["unverified"] else ""
                lines.append(f"| {kind} | {reader} | failed{lost} | - | - |")
                continue
            versus = "1.00x"
            if reader == SHARDLINE:
                versus = "-"
                if ratio is not None:
                    versus = f"{ratio['median']:.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f})"
            check = "" if row["verified"] else f" ({row['unverified']} run(s) NOT VERIFIED, left out)"
            lines.append(
                f"| {kind} | {reader}{check} | {cpu['median']:.2f} ({cpu['min']:.2f}-{cpu['max']:.2f}) | "
                f"{rate['median']:,.0f} | {versus} |"
            )
    return "\n".join(lines)


def run_benchmark(
    endpoint: str,
    *,
    records: int,
    record_size: int = 100,
    keys: int = 1000,
    shards: int = 4,
    repeat: int = 3,
    plain: bool = False,
    consumer_work: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fill, then read with every reader ``repeat`` times, interleaved; the result document."""
    if records < 1 or record_size < 1 or keys < 1 or shards < 1 or repeat < 1:
        raise ValueError("records, record size, keys, shards and repeat must all be >= 1")
    pairs = workload(records, record_size, keys)
    expected_digest = digest(pairs)
    streams = {"aggregated": (f"read-bench-agg-{uuid.uuid4().hex[:8]}", True)}
    if plain:
        streams["plain"] = (f"read-bench-plain-{uuid.uuid4().hex[:8]}", False)
    load_start = os.getloadavg()
    for stream, aggregate in streams.values():
        fill_stream(endpoint, stream, shards, pairs, aggregate=aggregate)
    del pairs
    runs: list[dict[str, Any]] = []
    try:
        for repetition in range(repeat):
            for kind, (stream, _) in streams.items():
                for reader in READERS:  # peer, then Shardline, in every repetition
                    result = _spawned(reader, endpoint, stream, records, expected_digest, consumer_work)
                    result.update(kind=kind, repetition=repetition, load=os.getloadavg()[0])
                    runs.append(result)
                    if log is not None:
                        log(json.dumps(result))
    finally:
        for stream, _ in streams.values():
            with contextlib.suppress(Exception):  # stay under the emulator's shard limit
                _boto3(endpoint).delete_stream(StreamName=stream)
    return {
        "workload": {"records": records, "record_size": record_size, "keys": keys, "shards": shards},
        "consumer_work": consumer_work,
        "repeat": repeat,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "runs": runs,
        "summary": summarise(runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers.kinesis_read", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--endpoint", required=True, help="Kinesis endpoint URL (e.g. kinesalite)")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--record-size", type=int, default=100)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--plain", action="store_true", help="also read a stream filled without aggregation")
    parser.add_argument(
        "--consumer-work",
        action="store_true",
        help="in the span, build one dict per record from every batch (as a sink builds its request)",
    )
    parser.add_argument("--out", help="write the result document (JSON) here")
    args = parser.parse_args(argv)
    document = run_benchmark(
        args.endpoint,
        records=args.records,
        record_size=args.record_size,
        keys=args.keys,
        shards=args.shards,
        repeat=args.repeat,
        plain=args.plain,
        consumer_work=args.consumer_work,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
    print(table(document["summary"]))
    start, end = document["load_average_start"], document["load_average_end"]
    print(
        f"load average (1/5/15 min): start {start[0]:.2f}/{start[1]:.2f}/{start[2]:.2f}, "
        f"end {end[0]:.2f}/{end[1]:.2f}/{end[2]:.2f}"
    )
    failed = [run for run in document["runs"] if "error" in run or not run.get("verified")]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
