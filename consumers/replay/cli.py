"""``shardline replay``: replay a Kinesis or Kafka range, or backfill a Firehose S3 archive, into a sink.

Examples::

    shardline replay --name fix-2024-05 --sink dynamodb://devices?guarded=true \\
        --kinesis-stream telemetry --from-time 2024-05-01T00:00:00+00:00 --to-time 2024-05-02T00:00:00+00:00
    shardline replay --name one-shard --sink file:///tmp/out.jsonl --kinesis-stream telemetry \\
        --shard shardId-000000000001 --from-sequence 4960... --to-sequence 4961...
    shardline replay --name backfill --sink influxdb://127.0.0.1:8086/iot --s3-archive s3://archive/2024/
    shardline replay --name kafka-fix --sink dynamodb://devices --kafka-topic telemetry \\
        --bootstrap-servers b-1.msk:9092 --partition 0 --partition 1 --from-offset 100 --to-offset 200

Progress goes to stderr (a live display on a terminal when ``rich`` is installed, plain
lines otherwise); the final summary (records read, written, skipped as duplicates,
dead-lettered) is printed on stdout.  The job's checkpoints live in ``--checkpoint``
(SQLite, default ``./replay-NAME.db``) under the namespace ``replay-NAME``, never in a live
consumer's.  AWS clients follow the standard configuration (``AWS_PROFILE``, ``AWS_REGION``,
``AWS_ENDPOINT_URL_<SERVICE>``).  Bad arguments are reported before any network call, with
exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from contextlib import AsyncExitStack
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from shardline.cli import Command
from shardline.errormap import translate
from shardline.errors import ConfigurationError, ShardlineError

if TYPE_CHECKING:
    from consumers.replay.ranges import RangeReader

__all__ = ["command"]


def _aware_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (e.g. +00:00): {text!r}")
    return moment


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="job name; its checkpoint namespace is replay-NAME")
    parser.add_argument(
        "--sink",
        required=True,
        help="sink URI (dynamodb://, firehose://, timestream://, influxdb://, file://)",
    )
    parser.add_argument("--dead-letter", help="dead-letter URI (file:///PATH.jsonl or s3://BUCKET/PREFIX)")
    parser.add_argument(
        "--checkpoint", help="SQLite file for the job's checkpoints (default ./replay-NAME.db)"
    )
    origin = parser.add_mutually_exclusive_group(required=True)
    origin.add_argument("--kinesis-stream", help="replay a range of this stream")
    origin.add_argument("--s3-archive", help="backfill from s3://BUCKET/PREFIX written by a Firehose sink")
    origin.add_argument("--kafka-topic", help="replay a range of this Kafka topic")
    parser.add_argument(
        "--shard", action="append", default=[], help="Kinesis: only these shards (repeatable)"
    )
    parser.add_argument("--from-time", type=_aware_time, help="ISO-8601 start, with time zone")
    parser.add_argument("--to-time", type=_aware_time, help="ISO-8601 end (exclusive), with time zone")
    parser.add_argument("--from-sequence", help="Kinesis: start at this sequence number (one --shard)")
    parser.add_argument("--to-sequence", help="Kinesis: stop after this sequence number (one --shard)")
    parser.add_argument("--bootstrap-servers", help="Kafka: brokers, host:port[,host:port]")
    parser.add_argument(
        "--partition", type=int, action="append", default=[], help="Kafka: partitions (repeatable; default 0)"
    )
    parser.add_argument("--from-offset", type=int, help="Kafka: first offset")
    parser.add_argument("--to-offset", type=int, help="Kafka: end offset (exclusive)")
    parser.add_argument(
        "--max-calls-per-second",
        type=float,
        default=1.0,
        help="Kinesis GetRecords calls/s per shard (of 5; default 1)",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="partitions read at once")


def _run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args))
    except ShardlineError as exc:
        return _fail(exc)
    except Exception as exc:
        mapped = translate(exc)
        if mapped is None:
            raise
        return _fail(mapped)


def _fail(error: ShardlineError) -> int:
    print(f"shardline replay: {type(error).__name__}: {error}", file=sys.stderr)
    return 2


def _check(args: argparse.Namespace) -> None:
    """Everything that can be refused without a network call."""
    if args.concurrency < 1:
        raise ConfigurationError("--concurrency must be at least 1")
    kinesis_only = ("shard", "from_sequence", "to_sequence")
    kafka_only = ("bootstrap_servers", "partition", "from_offset", "to_offset")
    if not args.kinesis_stream and any(getattr(args, name) for name in kinesis_only):
        raise ConfigurationError("--shard/--from-sequence/--to-sequence apply to --kinesis-stream only")
    if not args.kafka_topic and any(getattr(args, name) not in (None, []) for name in kafka_only):
        raise ConfigurationError("--bootstrap-servers/--partition/--*-offset apply to --kafka-topic only")
    if args.s3_archive:
        parts = urlsplit(args.s3_archive)
        if parts.scheme != "s3" or not parts.netloc:
            raise ConfigurationError("--s3-archive must be s3://BUCKET/PREFIX")
        if args.from_time or args.to_time:
            raise ConfigurationError("an S3 archive backfill reads whole objects: no --from-time/--to-time")
    if args.kafka_topic and not args.bootstrap_servers:
        raise ConfigurationError("--kafka-topic needs --bootstrap-servers")


async def _main(args: argparse.Namespace) -> int:
    from consumers.checkpoint.sqlite import SQLiteCheckpointStore
    from consumers.replay.job import ReplayJob
    from consumers.replay.progress import ProgressDisplay
    from consumers.sinks.uri import dead_letter_from_uri, sink_from_uri

    _check(args)
    async with AsyncExitStack() as stack:
        reader = await _reader(args, stack)
        dead_letter = dead_letter_from_uri(args.dead_letter) if args.dead_letter else None
        if dead_letter is not None:
            stack.push_async_callback(dead_letter.close)
        sink = sink_from_uri(args.sink, dead_letter=dead_letter)
        stack.push_async_callback(sink.close)
        store = SQLiteCheckpointStore(
            args.checkpoint or f"replay-{args.name}.db", namespace=f"replay-{args.name}"
        )
        stack.push_async_callback(store.close)
        with ProgressDisplay(args.name) as progress:
            job = ReplayJob(reader, sink, store, concurrency=args.concurrency, on_progress=progress.advance)
            summary = await job.run()
    for line in summary.lines():
        print(line)
    return 0


async def _reader(args: argparse.Namespace, stack: AsyncExitStack) -> RangeReader:
    """The range reader the arguments name (validated before any client is created)."""
    if args.kafka_topic:
        from consumers.replay.kafka_range import KafkaRangeReader, offset_ranges
        from shardline.kafka_config import KafkaClientConfig

        client = KafkaClientConfig(bootstrap_servers=args.bootstrap_servers, client_id="shardline-replay")
        ranges = await offset_ranges(
            client,
            args.kafka_topic,
            partitions=args.partition,
            from_offset=args.from_offset,
            to_offset=args.to_offset,
            from_time=args.from_time,
            to_time=args.to_time,
        )
        return KafkaRangeReader(ranges, client)

    from aiobotocore.session import get_session

    session = get_session()
    if args.kinesis_stream:
        from consumers.replay.kinesis_range import KinesisRange, KinesisRangeReader

        window = KinesisRange(args.from_time, args.to_time, args.from_sequence, args.to_sequence)
        if not 0 < args.max_calls_per_second <= 5:
            raise ConfigurationError("--max-calls-per-second must be in (0, 5]")
        if (args.from_sequence or args.to_sequence) and len(args.shard) != 1:
            raise ConfigurationError("a sequence-number range belongs to one shard: give exactly one --shard")
        kinesis = await stack.enter_async_context(session.create_client("kinesis"))
        return KinesisRangeReader(
            kinesis,
            args.kinesis_stream,
            window,
            shard_ids=args.shard,
            calls_per_second=args.max_calls_per_second,
        )

    from consumers.replay.ranges import S3ArchiveReader

    parts = urlsplit(args.s3_archive)
    s3 = await stack.enter_async_context(session.create_client("s3"))
    return S3ArchiveReader(s3, parts.netloc, parts.path.lstrip("/"))


command = Command(
    name="replay",
    help="Replay a stream range or backfill an archive into a sink.",
    configure=_configure,
    run=_run,
)
