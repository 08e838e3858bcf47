"""The canary over the wire: real producers, consumers, the consume CLI and stream-bench run
with the fake secret planted as credentials and inside record payloads, and nothing they log,
print, raise or write as a report may contain it (raw or base64-encoded).

Sinks and dead-letter destinations legitimately hold payloads; they are not searched.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from consumers.checkpoint import MemoryCheckpointStore
from consumers.kinesis import KinesisSource
from consumers.pipeline import Pipeline
from consumers.sinks.file import FileSink
from producers import KinesisProducer, keys
from producers.kafka import KafkaProducer, KafkaProducerConfig
from shardline.errors import ShardlineError
from shardline.kafka_config import KafkaClientConfig

pytestmark = pytest.mark.integration

CANARY = "CANARY-SECRET-d3adb33f"
NEEDLES = (CANARY, base64.b64encode(CANARY.encode()).decode()[:20])
PROJECT_LOGGERS = ("shardline", "producers", "consumers", "benchmarks")


_STANDARD_LOG_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


def _leaks(texts: list[str]) -> list[str]:
    return [text[:200] for text in texts if any(needle in text for needle in NEEDLES)]


@pytest.fixture
def project_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    monkeypatch.setenv("AWS_SESSION_TOKEN", CANARY)
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name.startswith(PROJECT_LOGGERS):
                extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_LOG_FIELDS}
                lines.append(f"{self.format(record)} {extras!r}")  # what a JSON formatter prints

    handler = Capture(level=logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def _payload(i: int) -> bytes:
    return json.dumps({"n": i, "secret": CANARY}).encode()


def test_kinesis_produce_and_consume_never_log_payloads_or_tokens(
    moto_endpoint: str, project_logs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    stream = f"canary-{uuid.uuid4().hex[:8]}"
    kinesis = boto3.client("kinesis", endpoint_url=moto_endpoint)
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)
    errors: list[str] = []

    async def scenario() -> int:
        async with KinesisProducer(stream, key_strategy=keys.random(), linger=0.01) as producer:
            acks = await (await producer.send_many([_payload(i) for i in range(50)]))
            assert len(acks) == 50
            for bad in ("", "k" * 257):
                try:
                    await producer.send(_payload(-1), partition_key=bad)
                except ShardlineError as error:
                    errors.extend([str(error), repr(error)])
            try:
                await producer.send(CANARY.encode() * 70_000, partition_key="big")
            except ShardlineError as error:
                errors.extend([str(error), repr(error)])
            errors.append(repr(producer))
        seen = asyncio.Event()
        count = 0

        def counting(record):  # type: ignore[no-untyped-def]
            nonlocal count
            count += 1
            if count == 50:
                seen.set()
            return record

        async with KinesisSource(stream, store=MemoryCheckpointStore(), owner="canary") as source:
            pipeline = Pipeline(source, FileSink(tmp_path / "sink.jsonl"), transform=counting)
            running = asyncio.create_task(pipeline.run())
            await asyncio.wait_for(seen.wait(), 60)
            await pipeline.stop()
            errors.extend([repr(source), repr(pipeline)])
            return (await running).records_out

    assert asyncio.run(scenario()) == 50
    assert len(errors) >= 7
    assert _leaks(errors + project_logs) == []


def test_consume_cli_logs_carry_no_payloads(moto_endpoint: str, tmp_path: Path) -> None:
    stream = f"canary-cli-{uuid.uuid4().hex[:8]}"
    kinesis = boto3.client("kinesis", endpoint_url=moto_endpoint)
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)
    kinesis.put_records(
        StreamName=stream, Records=[{"Data": _payload(i), "PartitionKey": f"k{i}"} for i in range(20)]
    )
    sink = tmp_path / "out.jsonl"
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_endpoint, "AWS_SESSION_TOKEN": CANARY}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shardline.cli",
            "consume",
            f"kinesis://{stream}",
            "--checkpoint",
            f"sqlite:///{tmp_path / 'leases.db'}",
            "--sink",
            f"file://{sink}",
            "--log-level",
            "debug",
            "--checkpoint-interval",
            "0.5",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        started = time.monotonic()
        while time.monotonic() - started < 60.0:  # the sink file is the process's only signal
            if sink.exists() and len(sink.read_text().splitlines()) >= 20:
                break
            if process.poll() is not None:
                break
            time.sleep(0.2)
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr[-2000:]
    assert len(sink.read_text().splitlines()) == 20
    assert stderr.count("\n") > 3  # it did log
    assert _leaks([stdout, stderr]) == []


def test_stream_bench_output_and_reports_carry_no_credentials(tmp_path: Path) -> None:
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": CANARY, "AWS_SESSION_TOKEN": CANARY}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.cli", "run", "--duration=2", "--rate=200", f"--out={tmp_path}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    reports = [path.read_text(errors="replace") for path in tmp_path.rglob("*") if path.is_file()]
    assert reports, "stream-bench wrote no report"
    assert _leaks([result.stdout, result.stderr, *reports]) == []


def test_kafka_delivery_failures_name_no_payload(project_logs: list[str]) -> None:
    with socket.socket() as placeholder:  # a port nothing listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    config = KafkaProducerConfig(delivery_timeout_ms=1500)
    errors: list[str] = []

    async def scenario() -> None:
        async with KafkaProducer(
            "canary", KafkaClientConfig(bootstrap_servers=f"127.0.0.1:{port}"), config=config
        ) as producer:
            future = await producer.send(_payload(1), key=b"k")
            try:
                await asyncio.wait_for(future, 30)
            except ShardlineError as error:
                errors.extend([str(error), repr(error), repr(error.__cause__)])
            errors.append(repr(producer))

    asyncio.run(scenario())
    assert len(errors) >= 3
    assert _leaks(errors + project_logs) == []


def test_a_sink_server_echoing_the_rejected_line_leaks_it_nowhere(project_logs: list[str]) -> None:
    """InfluxDB answers a refused write with the line in its body: that body (payload) must
    reach neither the logs, nor the errors, nor the dead-letter reasons."""
    from aiohttp import web

    from consumers.sinks.base import DeadLetterEntry
    from consumers.sinks.influxdb import InfluxDBSink
    from consumers.sinks.mapping import FieldMapping
    from consumers.source import SourceBatch
    from shardline.records import ConsumedRecord, KinesisPosition

    async def echo(request: web.Request) -> web.Response:
        line = await request.text()
        return web.json_response({"code": "invalid", "message": f"unable to parse '{line}'"}, status=400)

    class OneBatch:
        async def batches(self) -> Any:
            yield SourceBatch(
                "shardId-000000000000",
                [
                    ConsumedRecord(
                        json.dumps(
                            {"device": f"d{i}", "temp": i, "note": CANARY, "ts": 1_700_000_000_000 + i}
                        ).encode(),
                        f"d{i}",
                        KinesisPosition("telemetry", "shardId-000000000000", str(i)),
                    )
                    for i in range(1, 5)
                ],
            )

        async def checkpoint(self, partition: str, position: Any) -> bool:
            return True

        async def checkpoint_end(self, partition: str) -> None:
            return None

        async def stop(self) -> None:
            return None

        async def close(self, timeout: float | None = None) -> None:
            return None

    class KeepingDeadLetter:
        def __init__(self) -> None:
            self.entries: list[DeadLetterEntry] = []

        async def put(self, entries: Any) -> None:
            self.entries.extend(entries)

        async def close(self) -> None:
            return None

    produced: list[str] = []
    dead = KeepingDeadLetter()

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/write", echo)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        sink = InfluxDBSink(
            f"http://127.0.0.1:{port}",
            database="iot",
            mapping=FieldMapping(dimensions=("device",), measures=("temp", "note"), time_field="ts"),
        )
        try:
            stats = await asyncio.wait_for(Pipeline(OneBatch(), sink, dead_letter=dead).run(), 30)
            produced.extend([repr(stats), repr(sink)])
        finally:
            await sink.close()
            await runner.cleanup()

    asyncio.run(scenario())
    assert len(dead.entries) == 4  # bisected down to each refused line
    produced += [f"{entry.reason} {entry.error_type} {entry!r}" for entry in dead.entries]
    assert all("HTTP 400" in entry.reason for entry in dead.entries)
    assert _leaks(produced + project_logs) == []
