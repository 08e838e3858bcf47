"""stream-bench's producing side in one process, without the network: CPU per record.

A run of ``stream-bench`` measures the whole bench process against a target, which on a
shared machine moves by tens of percent from one minute to the next.  This isolates what the
bench's own process does per record on the producing side, steadily enough to compare two
versions or two workloads: the real :class:`~benchmarks.generator.LoadGenerator`,
:class:`~benchmarks.recorder.Recorder` and :class:`~producers.kinesis.KinesisProducer`
(aggregating), against a client that encodes each PutRecords body as the producer's own
client does (:func:`~producers.put_records_body.encode_put_records`) and answers with a JSON
body parsed as the producer parses one (:func:`~producers.put_records_body.parse_put_records`).
Ticks of ``--tick`` records, as the paced generator sends at 2,000 records/s (5 ms ticks), and
a request every ``--ticks-per-request`` ticks (the producer's 100 ms linger).

The timed span is the process's CPU from the first tick to the last acknowledgement.  The
client's own answer (its MD5 per entry and JSON encoding, the target's work in a real run) is
inside it; it is the same per entry for any workload, so compare workloads by difference.

    python -m benchmarks.producing_side --shards 64 --keys 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.gcpolicy import run_gc_settings
from benchmarks.generator import LoadGenerator
from benchmarks.recorder import Recorder
from benchmarks.workload import Skew, WorkloadSpec
from producers.kinesis import KinesisProducer
from producers.put_records_body import encode_put_records, parse_put_records
from shardline.limits import HASH_KEY_MAX
from shardline.shardmath import partition_key_hash

__all__ = ["InProcessKinesis", "main", "measure"]

_FIRST_SEQUENCE = 49590338271490256608559692538361571095921575989136588898


class InProcessKinesis:
    """A Kinesis client for ``shards`` evenly split shards that writes every entry it is given."""

    def __init__(self, shards: int) -> None:
        step = (HASH_KEY_MAX + 1) // shards
        self._step = step
        self.shard_ids = [f"shardId-{n:012d}" for n in range(shards)]
        self._shards = [
            {
                "ShardId": shard_id,
                "HashKeyRange": {
                    "StartingHashKey": str(n * step),
                    "EndingHashKey": str(HASH_KEY_MAX if n == shards - 1 else (n + 1) * step - 1),
                },
                "SequenceNumberRange": {"StartingSequenceNumber": str(_FIRST_SEQUENCE)},
            }
            for n, shard_id in enumerate(self.shard_ids)
        ]
        self.entries = 0
        self.body_bytes = 0

    async def describe_stream_summary(self, **_: Any) -> dict[str, Any]:
        return {
            "StreamDescriptionSummary": {
                "StreamName": "bench",
                "StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/bench",
                "StreamStatus": "ACTIVE",
                "OpenShardCount": len(self.shard_ids),
            }
        }

    async def list_shards(self, **_: Any) -> dict[str, Any]:
        return {"Shards": self._shards}

    async def put_records(self, **params: Any) -> dict[str, Any]:
        body = encode_put_records(params)
        assert body is not None, "the producer's entries are all ones the body encoder knows"
        self.body_bytes += len(body)
        results = []
        for entry in params["Records"]:
            hash_key = entry.get("ExplicitHashKey")
            hashed = int(hash_key) if hash_key else partition_key_hash(entry["PartitionKey"])
            self.entries += 1
            results.append(
                {
                    "SequenceNumber": str(_FIRST_SEQUENCE + self.entries),
                    "ShardId": self.shard_ids[min(hashed // self._step, len(self.shard_ids) - 1)],
                }
            )
        parsed = parse_put_records(json.dumps({"FailedRecordCount": 0, "Records": results}).encode())
        assert parsed is not None
        return parsed

    async def close(self) -> None:
        return None


async def measure(
    shards: int, keys: int, *, ticks: int = 30_000, tick: int = 10, ticks_per_request: int = 20
) -> dict[str, float]:
    """CPU-µs per record of ``ticks`` ticks of ``tick`` records, and the entries per record."""
    client = InProcessKinesis(shards)
    recorder = Recorder(client.shard_ids, 0.0)
    async with KinesisProducer(
        "bench", client=client, observer=recorder, rate_limit_percent=None, linger=3600.0
    ) as producer:
        generator = LoadGenerator(
            workload=WorkloadSpec(keys=keys, skew=Skew(0.0), rate=2000.0, record_size=256),
            shard_map=producer.shard_map,
            recorder=recorder,
            producer=producer,
            start=0.0,
            wall_origin_ns=0,
        )
        warm = 200  # the caches and the builders' pool filled, as a run's first second does
        for n in range(warm):
            await generator.send_batch(n * tick, tick)
        await producer.flush()
        entries_before = client.entries
        with run_gc_settings():  # the collector as stream-bench runs it
            started = time.process_time()
            for n in range(warm, warm + ticks):
                await generator.send_batch(n * tick, tick)
                if n % ticks_per_request == ticks_per_request - 1:
                    await producer.flush()
            await producer.flush()
            cpu = time.process_time() - started
    records = ticks * tick
    acked = sum(recorder.acked.values())
    if acked != records + warm * tick:
        raise RuntimeError(f"{records + warm * tick} records sent, {acked} acknowledged")
    return {
        "cpu_us_per_record": cpu / records * 1e6,
        "entries_per_record": (client.entries - entries_before) / records,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=30_000)
    parser.add_argument("--tick", type=int, default=10, help="records a tick (10: 2,000/s in 5 ms ticks)")
    parser.add_argument("--ticks-per-request", type=int, default=20, help="20: a 100 ms linger")
    args = parser.parse_args(argv)
    result = asyncio.run(
        measure(
            args.shards, args.keys, ticks=args.ticks, tick=args.tick, ticks_per_request=args.ticks_per_request
        )
    )
    print(
        f"{args.shards} shards, {args.keys} keys, {args.tick} records a tick: "
        f"{result['cpu_us_per_record']:.2f} CPU-us/record, "
        f"{result['entries_per_record']:.3f} Kinesis entries/record"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
