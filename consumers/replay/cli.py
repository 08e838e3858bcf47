"""``shardline replay``: replay a Kinesis range or backfill from a Firehose S3 archive into a sink.

Examples::

    shardline replay --name fix-2024-05 --sink dynamodb://devices?guarded=true \\
        --kinesis-stream telemetry --from-time 2024-05-01T00:00:00+00:00 --to-time 2024-05-02T00:00:00+00:00
    shardline replay --name backfill --sink influxdb://127.0.0.1:8086/iot --s3-archive s3://archive/2024/

Progress goes to a rich progress display on stderr when it is a terminal; the final summary
(records read, written, skipped as duplicates, dead-lettered) is printed on stdout.  The
job's checkpoints live in ``--checkpoint`` (SQLite, default ``./replay-NAME.db``) under the
namespace ``replay-NAME``, never in the live consumer's.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from shardline.cli import Command
from shardline.errors import ShardlineError

__all__ = ["command"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="job name; its checkpoint namespace is replay-NAME")
    parser.add_argument(
        "--sink", required=True, help="sink URI (dynamodb://, timestream://, influxdb://, ...)"
    )
    parser.add_argument("--dead-letter", help="dead-letter URI (file:///PATH.jsonl or s3://BUCKET/PREFIX)")
    parser.add_argument(
        "--checkpoint", help="SQLite file for the job's checkpoints (default ./replay-NAME.db)"
    )
    origin = parser.add_mutually_exclusive_group(required=True)
    origin.add_argument("--kinesis-stream", help="replay a range of this stream")
    origin.add_argument("--s3-archive", help="backfill from s3://BUCKET/PREFIX written by a Firehose sink")
    origin.add_argument("--kafka-topic", help="replay a Kafka topic range (needs the Kafka source)")
    parser.add_argument("--shard", action="append", default=[], help="only these shards (repeatable)")
    parser.add_argument("--from-time", type=datetime.fromisoformat, help="ISO-8601 start (with time zone)")
    parser.add_argument("--to-time", type=datetime.fromisoformat, help="ISO-8601 end, exclusive")
    parser.add_argument("--from-sequence", help="start at this sequence number")
    parser.add_argument("--to-sequence", help="stop after this sequence number")
    parser.add_argument(
        "--max-calls-per-second",
        type=float,
        default=1.0,
        help="GetRecords calls/s per shard (of 5; default 1)",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="partitions read at once")


def _run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args))
    except ShardlineError as exc:
        print(f"shardline replay: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


async def _main(args: argparse.Namespace) -> int:
    from aiobotocore.session import get_session

    from consumers.checkpoint.sqlite import SQLiteCheckpointStore
    from consumers.replay.job import ReplayJob
    from consumers.replay.kinesis_range import KinesisRange, KinesisRangeReader
    from consumers.replay.progress import ProgressDisplay
    from consumers.replay.ranges import RangeReader, S3ArchiveReader
    from consumers.sinks.uri import dead_letter_from_uri, sink_from_uri
    from shardline.errors import ConfigurationError

    if args.kafka_topic:
        raise ConfigurationError("Kafka replay needs consumers.kafka.KafkaSource, which is not available")
    window = KinesisRange(args.from_time, args.to_time, args.from_sequence, args.to_sequence)
    dead_letter = dead_letter_from_uri(args.dead_letter) if args.dead_letter else None
    sink = sink_from_uri(args.sink, dead_letter=dead_letter)
    store = SQLiteCheckpointStore(
        args.checkpoint or f"replay-{args.name}.db", namespace=f"replay-{args.name}"
    )
    session = get_session()
    service = "kinesis" if args.kinesis_stream else "s3"
    async with session.create_client(service) as client:
        reader: RangeReader
        if args.kinesis_stream:
            reader = KinesisRangeReader(
                client,
                args.kinesis_stream,
                window,
                shard_ids=args.shard,
                calls_per_second=args.max_calls_per_second,
            )
        else:
            parts = urlsplit(args.s3_archive)
            if parts.scheme != "s3" or not parts.netloc:
                raise ConfigurationError("--s3-archive must be s3://BUCKET/PREFIX")
            reader = S3ArchiveReader(client, parts.netloc, parts.path.lstrip("/"))
        with ProgressDisplay(args.name) as progress:
            job = ReplayJob(reader, sink, store, concurrency=args.concurrency, on_progress=progress.advance)
            try:
                summary = await job.run()
            finally:
                await _close(sink, dead_letter, store)
    for line in summary.lines():
        print(line)
    return 0


async def _close(*resources: Any) -> None:
    for resource in resources:
        if resource is not None:
            await resource.close()


command = Command(
    name="replay",
    help="Replay a stream range or backfill an archive into a sink.",
    configure=_configure,
    run=_run,
)
