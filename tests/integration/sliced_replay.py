"""Helpers for the sliced-replay tests: the CLI as a subprocess, the job's table, table hashes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.replay.job import ReplayJob
from consumers.replay.ranges import RangeReader

REGION = "us-east-1"


def client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION)


def environment(**endpoints: str) -> dict[str, str]:
    """The test's AWS settings for a CLI subprocess, with per-service endpoints."""
    env = dict(os.environ)
    for service, endpoint in endpoints.items():
        env[f"AWS_ENDPOINT_URL_{service.upper()}"] = endpoint
    return env


def shardline(
    args: list[str], env: dict[str, str], *, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shardline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_shardline(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shardline.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def make_table(dynamodb: Any, name: str, key: str = "pk") -> str:
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def scan(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page["Items"])
    return items


def table_hash(dynamodb: Any, table: str) -> tuple[str, int]:
    items = sorted(json.dumps(item, sort_keys=True) for item in scan(dynamodb, table))
    return hashlib.sha256("\n".join(items).encode()).hexdigest(), len(items)


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def dead_lettered_sequences(s3: Any, bucket: str) -> list[str]:
    """Sequence numbers of every dead-letter entry in the bucket (repeats kept)."""
    sequences: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            for line in body.splitlines():
                sequences.append(json.loads(line)["position"]["sequence_number"])
    return sequences


def single_process_replay(
    reader: Callable[[Any], RangeReader], sink_uri: str, dead_letter_uri: str, *, service: str, endpoint: str
) -> None:
    """The reference: the whole range in one process, one replay job, no slicing."""
    from aiobotocore.session import get_session

    from consumers.sinks.uri import dead_letter_from_uri, sink_from_uri

    async def run() -> None:
        async with get_session().create_client(service, endpoint_url=endpoint, region_name=REGION) as source:
            dead_letter = dead_letter_from_uri(dead_letter_uri)
            sink = sink_from_uri(sink_uri)
            try:
                await ReplayJob(reader(source), sink, MemoryCheckpointStore(), dead_letter=dead_letter).run()
            finally:
                await sink.close()
                await dead_letter.close()

    asyncio.run(run())


def manifest_slices(path: Path) -> list[dict[str, Any]]:
    slices: list[dict[str, Any]] = json.loads(path.read_text())["slices"]
    return slices
