"""What the AWS clients of a consumer pipeline cost to hold: objects, memory, collection, creation.

Builds, through Shardline's own factories, the four clients a typical process holds: a
producer's Kinesis client, a reader's Kinesis client, a DynamoDB checkpoint store's and a
Firehose sink's.  No request is sent (the endpoint is a closed local port).  After each
client it prints the time the client took to create, the objects the garbage collector
tracks beyond what the process held before (botocore's loaded JSON is most of them), and how
long a full collection then takes; at the end, the process's resident memory.

    python -m benchmarks.client_footprint
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

from benchmarks.process_stats import rss_bytes
from consumers.kinesis.session import reader_client
from shardline.clients import aiobotocore_client

__all__ = ["main", "measure"]

_NOWHERE = "http://127.0.0.1:9"
_REGION = "us-east-1"


def _clients() -> list[tuple[str, Callable[[], AbstractAsyncContextManager[Any]]]]:
    def plain(service: str) -> Callable[[], AbstractAsyncContextManager[Any]]:
        return lambda: aiobotocore_client(service, region_name=_REGION, endpoint_url=_NOWHERE)

    return [
        ("kinesis (producer)", plain("kinesis")),
        ("kinesis (reader)", lambda: reader_client(region_name=_REGION, endpoint_url=_NOWHERE)),
        ("dynamodb (checkpoints)", plain("dynamodb")),
        ("firehose (sink)", plain("firehose")),
    ]


async def measure() -> dict[str, Any]:
    """One row per client, in the order they were built, and the RSS with all of them open."""
    gc.collect()
    before = len(gc.get_objects())
    rows: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        for name, make in _clients():
            started = time.perf_counter()
            await stack.enter_async_context(make())
            created = time.perf_counter() - started
            gc.collect()
            tracked = len(gc.get_objects()) - before
            started = time.perf_counter()
            gc.collect()
            collection = time.perf_counter() - started
            rows.append(
                {
                    "client": name,
                    "create_ms": round(created * 1000, 1),
                    "tracked_objects_added": tracked,
                    "full_collection_ms": round(collection * 1000, 1),
                }
            )
        rss = rss_bytes() / 2**20
    return {"clients": rows, "rss_mib": round(rss, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args(argv)
    print(json.dumps(asyncio.run(measure())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
