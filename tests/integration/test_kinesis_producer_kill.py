"""kill -9 of a producer with a full buffer: only records never acknowledged may be missing.

A child process sends records through KinesisProducer (paced at the shard's write quota,
so most of them are still buffered) and writes each record's index to a pipe the moment its
acknowledgement arrives.  The parent SIGKILLs it mid-way and reads the stream back: every
acknowledged record must be there.  Unacknowledged ones may or may not be (a request in
flight at the kill can land without its answer being seen).
"""

from __future__ import annotations

import asyncio
import functools
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

RECORDS = 4_000
KILL_AFTER_ACKS = 300
ACK_DEADLINE_SECONDS = 60.0


def payload(index: int) -> bytes:
    return b"kill-%08d-" % index + b"x" * 60


async def _child(endpoint: str, stream: str) -> None:
    """Send RECORDS records one by one; report each acknowledged index on stdout at once."""
    from producers import KinesisProducer

    out = sys.stdout.fileno()

    def report(index: int, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            os.write(out, b"%d\n" % index)  # unbuffered: the parent sees it even if we die next

    # No aggregation and pacing at the quota: 1,000 entries/s on one shard, so the
    # buffer holds thousands of records when the parent's kill arrives.
    async with KinesisProducer(stream, endpoint_url=endpoint, aggregate=False, linger=0.01) as producer:
        for index in range(RECORDS):
            future = await producer.send(payload(index), partition_key=f"device-{index % 50}")
            future.add_done_callback(functools.partial(report, index))
        os.write(out, b"buffered\n")
        await producer.flush()


def _read_lines(process: subprocess.Popen[bytes], until: int, deadline: float) -> list[bytes]:
    """Lines from the child until ``until`` acknowledgements were seen (bounded wait)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    buffer = b""
    acks = 0
    while acks < until:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {acks} acknowledgements within {ACK_DEADLINE_SECONDS}s"
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        assert chunk, "the child exited before it was killed"
        buffer += chunk
        acks = sum(1 for line in buffer.split(b"\n")[:-1] if line.isdigit())
    return [buffer]


def _acked(chunks: list[bytes]) -> set[int]:
    lines = b"".join(chunks).split(b"\n")
    return {int(line) for line in lines if line.isdigit()}


@pytest.mark.timeout(180)
def test_kill_9_with_a_full_buffer_loses_only_unacknowledged_records(kinesis_endpoint: str) -> None:
    import boto3

    from tests.integration.kinesis_producer_readback import create_stream, read_back

    client = boto3.client("kinesis", endpoint_url=kinesis_endpoint)
    stream = create_stream(client, 1, "producer-kill")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, __file__, kinesis_endpoint, stream], stdout=subprocess.PIPE, cwd=root, env=env
    )
    try:
        chunks = _read_lines(process, KILL_AFTER_ACKS, time.monotonic() + ACK_DEADLINE_SECONDS)
        process.send_signal(signal.SIGKILL)
        assert process.stdout is not None
        chunks.append(process.stdout.read())  # acknowledgements written before the kill
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    acked = _acked(chunks)
    assert len(acked) >= KILL_AFTER_ACKS
    assert len(acked) < RECORDS, "the producer finished before the kill; nothing was in its buffer"

    stored = {record.data for record in read_back(client, stream)}
    missing_acked = [i for i in sorted(acked) if payload(i) not in stored]
    assert not missing_acked, f"{len(missing_acked)} acknowledged records lost, e.g. {missing_acked[:5]}"
    # Whatever is in the stream is something that was sent (no corruption), each once at most
    # apart from retried requests whose answer was lost in the kill.
    sent = {payload(i) for i in range(RECORDS)}
    assert stored <= sent
    assert len(stored) < RECORDS  # the kill did cut the buffered records off


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1], sys.argv[2]))
