"""Drain-rate admission over the real wire: kinesis-mock behind a link slower than the load.

The producer reaches kinesis-mock through :class:`RateLimitedProxy`, which forwards requests
at 512 KiB/s (about 380 kB/s of user records once base64-encoded); set-up and read-back go
to kinesis-mock directly.  1.5 MB fed at once take about four seconds to cross the link,
longer than the 3 s record TTL: with the buffer caps alone 200-250 of the 1,500 records
failed with DeliveryError when this was written.  With ``admission="drain-rate"`` ``send()`` waits
instead, and every record arrives once; so does ``send_many()`` given all 1.5 MB in one call
(taken in parts: a batch taken whole once the buffer was empty let its tail expire).
"""

from __future__ import annotations

import asyncio
import os
import time

import boto3
import pytest
from aiobotocore.session import get_session

from benchmarks.peers.kinesis_drain import RateLimitedProxy
from producers import KinesisProducer
from shardline.limits import KiB
from shardline.records import Record
from tests.integration.kinesis_producer_readback import assert_each_once_on_its_shard, create_stream

pytestmark = pytest.mark.integration


@pytest.mark.timeout(90)
@pytest.mark.parametrize("feed", ["send", "send_many"])
async def test_drain_rate_admission_delivers_everything_through_a_slow_link(
    kinesis_endpoint: str, feed: str
) -> None:
    admin = boto3.client("kinesis", endpoint_url=kinesis_endpoint)
    stream = await asyncio.to_thread(create_stream, admin, 2, "drain")
    records = [Record(b"%06d" % i + os.urandom(994), partition_key=f"key-{i % 100}") for i in range(1500)]
    proxy = RateLimitedProxy(kinesis_endpoint, 512 * KiB)
    endpoint = await proxy.start()
    waited = 0.0
    try:
        async with (
            get_session().create_client("kinesis", endpoint_url=endpoint) as client,
            KinesisProducer(
                stream,
                client=client,
                admission="drain-rate",
                record_ttl=3.0,
                max_batch_bytes=64 * KiB,  # one request crosses the link in a sixth of a second
                rate_limit_percent=None,
            ) as producer,
        ):
            results: list[object]
            if feed == "send_many":
                before = time.monotonic()
                batch = await asyncio.wait_for(producer.send_many(records), 60)
                waited = time.monotonic() - before
                acks = await asyncio.wait_for(batch, 60)
                results = [acks.failed.get(i) for i in range(len(records))]
            else:
                futures = []
                for record in records:
                    before = time.monotonic()
                    futures.append(await producer.send(record))
                    waited += time.monotonic() - before
                results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 60)
            rate = producer.drain_rate
    finally:
        await proxy.stop()
    failures = [type(result).__name__ for result in results if isinstance(result, BaseException)]
    assert not failures, failures[:5]
    # The link, not the caller, set the pace: send() held the caller back for seconds, and
    # the rate the producer measured is the link's (user bytes are about 3/4 of what it
    # carries; the estimate swings as requests sharing the link finish together).
    assert waited > 1.0
    assert rate is not None and 0.25 * 512 * KiB < rate < 2 * 512 * KiB
    await asyncio.to_thread(assert_each_once_on_its_shard, admin, stream, records)
