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

The same two patterns run with the lightest per-record handle pure Python allows instead of a
future (``slotted awaitable``): a two-slot object naming its batch and its position, resolved
by a write into the batch's array and awaited through a generator that returns at once.  It
answers whether a handle that is not an ``asyncio`` future would lift the floor: the collector
walks any object the caller holds, whatever its class.

    python -m benchmarks.peers.future_floor --records 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
from collections.abc import Callable, Coroutine, Generator, Sequence
from typing import Any

from benchmarks.process_stats import process_cpu_seconds

__all__ = ["main", "measure"]


class _Results:
    """What a batch of slotted handles resolves into: one array slot a record."""

    __slots__ = ("values",)

    def __init__(self, records: int) -> None:
        self.values: list[int | None] = [None] * records


class _SlottedHandle:
    """The lightest awaitable per-record handle: its batch and its position, nothing else."""

    __slots__ = ("index", "results")

    def __init__(self, results: _Results, index: int) -> None:
        self.results = results
        self.index = index

    def __await__(self) -> Generator[Any, None, int | None]:
        return self.results.values[self.index]
        yield  # a generator that never suspends: the result is there when the harness awaits


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


async def _held_slotted(records: int) -> float:
    started = process_cpu_seconds()
    results = _Results(records)
    handles = [_SlottedHandle(results, index) for index in range(records)]
    values = results.values
    for index in range(records):
        values[index] = index
    for handle in handles:
        await handle
    return process_cpu_seconds() - started


async def _one_slotted_at_a_time(records: int) -> float:
    started = process_cpu_seconds()
    results = _Results(records)
    values = results.values
    for index in range(records):
        handle = _SlottedHandle(results, index)
        values[index] = index
        await handle
    return process_cpu_seconds() - started


_PATTERNS: dict[tuple[str, bool], Callable[[int], Coroutine[Any, Any, float]]] = {
    ("asyncio future", True): _held,
    ("asyncio future", False): _one_at_a_time,
    ("slotted awaitable", True): _held_slotted,
    ("slotted awaitable", False): _one_slotted_at_a_time,
}
HANDLES = ("asyncio future", "slotted awaitable")


def measure(records: int, *, held: bool, handle: str = "asyncio future") -> float:
    """CPU-µs per record of the handle's life, collector included."""
    gc.collect()  # what earlier repetitions left is not this one's to walk
    seconds = asyncio.run(_PATTERNS[handle, held](records))
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

    for handle in HANDLES:
        for held in (True, False):
            runs = [measure(args.records, held=held, handle=handle) for _ in range(args.repeat)]
            print(
                json.dumps(
                    {
                        "handle": handle,
                        "pattern": "held" if held else "one at a time",
                        "records": args.records,
                        "cpu_us_per_record": sorted(round(run, 3) for run in runs),
                    }
                ),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
