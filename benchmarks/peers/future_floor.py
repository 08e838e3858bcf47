"""The least a per-record ``asyncio`` future can cost: create it, hold it, resolve it, await it.

The per-record ``send()`` rows of the peer tables compare a client that returns one future a
record, which the harness keeps until it awaits them all, with peers that return nothing per
record.  This measures that future alone, with no producer behind it: the event loop's own
futures, created, held in a list, resolved and then awaited in order as the harness does
(``held``), and the same one at a time, never more than one alive (``one at a time``).  The
process has the producers' modules imported, so each full collection walks the heap a real
run has.  What ``held`` costs is a floor under any ``send()`` that returns an ``asyncio``
future the caller keeps: it is mostly the collector walking the held futures at each full
collection, which grows with how many the caller holds.

    python -m benchmarks.peers.future_floor --records 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
from collections.abc import Sequence

from benchmarks.process_stats import process_cpu_seconds

__all__ = ["main", "measure"]


async def _held(records: int) -> float:
    new_future = asyncio.get_running_loop().create_future
    started = process_cpu_seconds()
    futures = [new_future() for _ in range(records)]
    for future in futures:
        future.set_result(None)
    for future in futures:
        await future
    return process_cpu_seconds() - started


async def _one_at_a_time(records: int) -> float:
    new_future = asyncio.get_running_loop().create_future
    started = process_cpu_seconds()
    for _ in range(records):
        future = new_future()
        future.set_result(None)
        await future
    return process_cpu_seconds() - started


def measure(records: int, *, held: bool) -> float:
    """CPU-µs per record of the future's life, collector included."""
    gc.collect()  # what earlier repetitions left is not this one's to walk
    seconds = asyncio.run(_held(records) if held else _one_at_a_time(records))
    return seconds / records * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    for module in ("producers.kafka", "producers.kinesis"):  # the heap a producer's process has
        importlib.import_module(module)

    for held in (True, False):
        runs = [measure(args.records, held=held) for _ in range(args.repeat)]
        print(
            json.dumps(
                {
                    "futures": "held" if held else "one at a time",
                    "records": args.records,
                    "cpu_us_per_record": sorted(round(run, 3) for run in runs),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
