"""`shardline consume --metrics emf` writes CloudWatch EMF documents that ops dashboards read:
iterator age and throughput per stream and shard, sink outcomes per sink."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

pytestmark = pytest.mark.integration


def test_consume_writes_emf_metrics_on_stdout(moto_endpoint: str, tmp_path: Path) -> None:
    stream = f"metrics-{uuid.uuid4().hex[:8]}"
    kinesis = boto3.client("kinesis", endpoint_url=moto_endpoint)
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)
    records = [{"Data": b"x", "PartitionKey": f"k{i}"} for i in range(30)]
    kinesis.put_records(StreamName=stream, Records=records)
    sink = tmp_path / "out.jsonl"
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
            "--metrics",
            "emf",
            "--metrics-interval",
            "0.5",
        ],
        env={**os.environ, "AWS_ENDPOINT_URL": moto_endpoint},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        started = time.monotonic()
        while time.monotonic() - started < 60.0:  # the sink file is the process's only signal
            if (sink.exists() and len(sink.read_text().splitlines()) >= 30) or process.poll() is not None:
                break
            time.sleep(0.2)
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr[-2000:]

    documents: list[dict[str, Any]] = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert documents, "no EMF documents on stdout"
    for document in documents:
        directive = document["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "Shardline"
        for metric in directive["Metrics"]:
            assert metric["Name"] in document
    totals: dict[str, float] = {}
    for document in documents:
        if document.get("Stream") == stream and "Shard" in document:
            for name in ("RecordsRead",):
                if name in document:
                    totals[name] = totals.get(name, 0.0) + float(document[name])
    assert totals.get("RecordsRead") == 30
    assert any("IteratorAgeMilliseconds" in document for document in documents)
    assert any(document.get("Sink") == "file" for document in documents)
