"""Backfill reads what the project's own Firehose sink and template write (moto Firehose -> S3).

moto's Firehose delivers the records to S3 but ignores ``CompressionFormat``; AWS
compresses the object as the template says.  So the test takes the object moto wrote and
compresses it the way Firehose does for the template's setting (GZIP: the object gzipped,
``.gz`` appended to its key), and the reader must read both forms to the same records.
"""

from __future__ import annotations

import gzip
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.replay.job import ReplayJob
from consumers.replay.ranges import S3ArchiveReader
from consumers.sinks.firehose import FirehoseSink
from consumers.sinks.memory import MemorySink
from shardline.records import ConsumedRecord, KinesisPosition
from tests.integration.sink_readback import new_delivery_stream

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "cloudformation" / "firehose.yaml"


def template_compression() -> str:
    found = re.findall(r"^\s*CompressionFormat:\s*(\S+)\s*$", TEMPLATE.read_text(), flags=re.MULTILINE)
    assert found, "the Firehose template names a CompressionFormat"
    return str(found[0])


def compress_as_firehose(fmt: str, key: str, body: bytes) -> tuple[str, bytes]:
    if fmt == "GZIP":
        return key + ".gz", gzip.compress(body)
    if fmt == "UNCOMPRESSED":
        return key, body
    raise AssertionError(f"the template uses {fmt}: teach this test and the reader about it")


def readings(count: int) -> list[ConsumedRecord]:
    return [
        ConsumedRecord(
            json.dumps({"device": f"d{i % 5}", "temp": i}).encode(),
            f"d{i % 5}",
            KinesisPosition("telemetry", "shardId-000000000000", str(1000 + i)),
        )
        for i in range(count)
    ]


async def test_backfill_reads_the_archive_firehose_writes_gzip_included(
    s3_and_firehose: tuple[Any, Any],
) -> None:
    s3, firehose = s3_and_firehose
    fmt = template_compression()
    bucket = f"archive-{uuid.uuid4().hex[:10]}"
    await s3.create_bucket(Bucket=bucket)
    stream = await new_delivery_stream(firehose, bucket, compression=fmt)
    records = readings(120)
    await FirehoseSink(stream, client=firehose).write(records)
    [landed] = (await s3.list_objects_v2(Bucket=bucket, Prefix="raw/"))["Contents"]
    raw = await (await s3.get_object(Bucket=bucket, Key=landed["Key"]))["Body"].read()
    key, body = compress_as_firehose(fmt, "delivered/" + landed["Key"], raw)
    await s3.put_object(Bucket=bucket, Key=key, Body=body)

    for prefix in ("raw/", "delivered/"):
        sink = MemorySink(max_entries=500)
        reader = S3ArchiveReader(s3, bucket, prefix, chunk_bytes=1024)  # many chunks per object
        summary = await ReplayJob(reader, sink, MemoryCheckpointStore()).run()
        assert (summary.read, summary.malformed, summary.exit_status) == (120, 0, 0), prefix
        assert sink.items == {r.identity: r.data for r in records}


async def test_poison_lines_are_counted_and_never_stop_the_backfill(s3_and_firehose: tuple[Any, Any]) -> None:
    s3, _ = s3_and_firehose
    bucket = f"archive-{uuid.uuid4().hex[:10]}"
    await s3.create_bucket(Bucket=bucket)
    from consumers.sinks.firehose import encode_line

    good = readings(30)
    deep = b"[" * 200_000 + b"]" * 200_000  # RecursionError in the JSON parser
    lines = [encode_line(r) for r in good[:10]] + [deep + b"\n", b"not json\n", b"[1,2]\n"]
    lines += [encode_line(r) for r in good[10:]]
    await s3.put_object(Bucket=bucket, Key="a/part-0.gz", Body=gzip.compress(b"".join(lines)))
    await s3.put_object(Bucket=bucket, Key="a/part-1.zip", Body=b"PK\x03\x04" + b"\x00" * 40)
    sink = MemorySink(max_entries=500)
    summary = await ReplayJob(S3ArchiveReader(s3, bucket, "a/"), sink, MemoryCheckpointStore()).run()
    assert (summary.read, summary.malformed, summary.unreadable_objects) == (30, 3, 1)
    assert summary.exit_status == 3
    assert "malformed lines skipped: 3" in summary.lines()
    assert len(sink.items) == 30
