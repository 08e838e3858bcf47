"""``shardline replay``: replay a Kinesis or Kafka range, or backfill a Firehose S3 archive, into a sink.

The source is a URI, as for ``shardline consume``::

    shardline replay kinesis://telemetry --name fix-2024-05 --sink dynamodb://devices?guarded=true \\
        --from-time 2024-05-01T00:00:00+00:00 --to-time 2024-05-02T00:00:00+00:00
    shardline replay kinesis://telemetry --name one-shard --sink file:out.jsonl \\
        --shard shardId-000000000001 --from-sequence 4960... --to-sequence 4961...
    shardline replay s3://archive/2024/ --name backfill --sink influxdb://127.0.0.1:8086/iot
    shardline replay kafka://b-1.msk:9092/telemetry --name kafka-fix --sink dynamodb://devices \\
        --from-offset 100 --to-offset 200

A Kafka range covers every partition of the topic unless ``--partition`` names some.
Progress goes to stderr (a live display on a terminal when ``rich`` is installed, plain
lines otherwise); the final summary (records read, written, skipped as duplicates,
dead-lettered) is printed on stdout.  The job's checkpoints live in ``--checkpoint``
(SQLite, default ``./replay-NAME.db``) under the namespace ``replay-NAME``, never in a live
consumer's.  AWS clients follow the standard configuration (``AWS_PROFILE``, ``AWS_REGION``,
``AWS_ENDPOINT_URL_<SERVICE>``).  Bad arguments are reported before any network call, and a
missing stream, topic, bucket or sink destination before anything is read: one line on
stderr, exit status 2.  A job that finished but skipped malformed archive lines (or objects
in a compression it does not read) says how many in the summary and exits with status 3.
Kafka in plaintext to a host that is not loopback is warned about (``?security=tls`` or
``msk-iam`` in the SOURCE URI).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from consumers.cli import KafkaTarget, parse_kafka_uri, parse_stream_uri
from consumers.preflight import (
    ResourceCheck,
    dead_letter_check,
    kafka_topics_check,
    kinesis_stream_check,
    run_checks,
    s3_bucket_check,
    sink_check,
)
from consumers.replay.local_job import bind_job, job_lock
from shardline.cli import Command, aware_time_argument, exit_status_for
from shardline.endpoints import redact_url
from shardline.errormap import map_aws_errors, map_kafka_errors
from shardline.errors import ConfigurationError, ShardlineError
from shardline.interrupts import INTERRUPTED, GracefulInterrupts
from shardline.logformat import setup_logging

if TYPE_CHECKING:
    from consumers.replay.kinesis_range import KinesisRange
    from consumers.replay.ranges import RangeReader
    from shardline.kafka_config import KafkaClientConfig

__all__ = ["ReplaySource", "command", "parse_source"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="kinesis://STREAM, kafka://BOOTSTRAP/TOPIC[?security=tls|msk-iam], or s3://BUCKET/PREFIX "
        "(a Firehose archive to backfill)",
    )
    parser.add_argument("--name", required=True, help="job name; its checkpoint namespace is replay-NAME")
    parser.add_argument(
        "--sink",
        required=True,
        help="sink URI (dynamodb://, firehose://, timestream://, influxdb://, file://)",
    )
    parser.add_argument("--dead-letter", help="dead-letter URI (file:///PATH.jsonl or s3://BUCKET/PREFIX)")
    parser.add_argument(
        "--transform", help="module:function applied to each record before the sink (as in consume)"
    )
    parser.add_argument(
        "--checkpoint", help="SQLite file for the job's checkpoints (default ./replay-NAME.db)"
    )
    parser.add_argument(
        "--shard", action="append", default=[], help="Kinesis: only these shards (repeatable)"
    )
    parser.add_argument("--from-time", type=aware_time_argument, help="ISO-8601 start, with time zone")
    parser.add_argument(
        "--to-time", type=aware_time_argument, help="ISO-8601 end (exclusive), with time zone"
    )
    parser.add_argument("--from-sequence", help="Kinesis: start at this sequence number (one --shard)")
    parser.add_argument("--to-sequence", help="Kinesis: stop after this sequence number (one --shard)")
    parser.add_argument(
        "--partition",
        type=int,
        action="append",
        default=[],
        help="Kafka: partitions (repeatable; default: all)",
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
    parser.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log level on stderr (default WARNING: skipped archive lines and objects, by key and "
        "line number; the AWS SDK's loggers stay at WARNING or above)",
    )


def _run(args: argparse.Namespace) -> int:
    # the shared set-up: without it a warning lost its fields (the skipped object's key and
    # line numbers) and botocore's DEBUG logs (record payloads) were one misconfiguration away
    setup_logging(args.log_level)
    try:
        with map_aws_errors(), map_kafka_errors():
            return asyncio.run(_main(args))
    except KeyboardInterrupt:  # before the job installed its handlers
        return INTERRUPTED
    except ShardlineError as exc:
        return _fail(exc)


def _fail(error: ShardlineError) -> int:
    print(f"shardline replay: {type(error).__name__}: {error}", file=sys.stderr)
    return exit_status_for(error)  # a run-time failure is 1, as for every command (it was 2)


@dataclass(frozen=True, slots=True)
class ReplaySource:
    """What the SOURCE argument names: exactly one of a stream, a topic or an archive."""

    kinesis_stream: str | None = None
    kafka: KafkaTarget | None = None
    s3_bucket: str | None = None
    s3_prefix: str = ""


def parse_source(uri: str) -> ReplaySource:
    """``kinesis://STREAM`` | ``kafka://BOOTSTRAP/TOPIC`` | ``s3://BUCKET/PREFIX``."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "kinesis":
        return ReplaySource(kinesis_stream=parse_stream_uri(uri))
    if scheme == "kafka":
        target = parse_kafka_uri(uri, require_group=False)
        if len(target.topics) != 1:
            raise ConfigurationError("a Kafka replay reads one topic: kafka://BOOTSTRAP/TOPIC")
        return ReplaySource(kafka=target)
    if scheme == "s3":
        parts = urlsplit(uri)
        if not parts.netloc:
            raise ConfigurationError(f"an archive must be given as s3://BUCKET/PREFIX, got {uri!r}")
        return ReplaySource(s3_bucket=parts.netloc, s3_prefix=parts.path.lstrip("/"))
    raise ConfigurationError(
        f"SOURCE must be kinesis://STREAM, kafka://BOOTSTRAP/TOPIC or s3://BUCKET/PREFIX, got {uri!r}"
    )


def _check(args: argparse.Namespace) -> ReplaySource:
    """Everything that can be refused without a network call."""
    source = parse_source(args.source)
    if args.concurrency < 1:
        raise ConfigurationError("--concurrency must be at least 1")
    kinesis_only = ("shard", "from_sequence", "to_sequence")
    kafka_only = ("partition", "from_offset", "to_offset")
    if source.kinesis_stream is None and any(getattr(args, name) for name in kinesis_only):
        raise ConfigurationError("--shard/--from-sequence/--to-sequence apply to a kinesis:// SOURCE only")
    if source.kafka is None and any(getattr(args, name) not in (None, []) for name in kafka_only):
        raise ConfigurationError("--partition/--from-offset/--to-offset apply to a kafka:// SOURCE only")
    if source.s3_bucket is not None and (args.from_time or args.to_time):
        raise ConfigurationError("an S3 archive backfill reads whole objects: no --from-time/--to-time")
    if source.kafka is not None:
        from consumers.replay.kafka_range import check_range

        check_range(args.from_offset, args.to_offset, args.from_time, args.to_time)
    if source.kinesis_stream is not None:
        if not 0 < args.max_calls_per_second <= 5:
            raise ConfigurationError("--max-calls-per-second must be in (0, 5]")
        if (args.from_sequence or args.to_sequence) and len(args.shard) != 1:
            raise ConfigurationError("a sequence-number range belongs to one shard: give exactly one --shard")
        _kinesis_window(args)  # its order and its numbers are checked here, before any client exists
    return source


def _kinesis_window(args: argparse.Namespace) -> KinesisRange:
    """The Kinesis range the arguments name; a range that ends before it starts is refused."""
    from consumers.replay.kinesis_range import KinesisRange

    return KinesisRange(args.from_time, args.to_time, args.from_sequence, args.to_sequence)


def _resource_checks(args: argparse.Namespace, source: ReplaySource) -> list[ResourceCheck]:
    checks: list[ResourceCheck | None] = [
        sink_check(args.sink),
        dead_letter_check(args.dead_letter) if args.dead_letter else None,
    ]
    if source.kinesis_stream is not None:
        checks.insert(0, kinesis_stream_check(source.kinesis_stream, "the SOURCE argument"))
    elif source.kafka is not None:
        client = _kafka_client(source.kafka)
        checks.insert(0, kafka_topics_check(source.kafka.topics, "the SOURCE argument", client))
    elif source.s3_bucket is not None:
        checks.insert(0, s3_bucket_check(source.s3_bucket, "the SOURCE argument"))
    return [check for check in checks if check is not None]


def _kafka_client(target: KafkaTarget) -> KafkaClientConfig:
    from shardline.kafka_config import KafkaClientConfig, security_named

    log = logging.getLogger("shardline.replay")
    security = security_named(target.security, target.bootstrap_servers, log)
    return KafkaClientConfig(target.bootstrap_servers, security=security, client_id="shardline-replay")


async def _main(args: argparse.Namespace) -> int:
    from consumers._pipeline_transform import load_transform
    from consumers.checkpoint.sqlite import SQLiteCheckpointStore
    from consumers.replay.job import ReplayJob
    from consumers.replay.progress import ProgressDisplay
    from consumers.sinks.uri import dead_letter_from_uri, sink_from_uri

    source = _check(args)
    transform = load_transform(args.transform) if args.transform else None
    database, namespace = args.checkpoint or f"replay-{args.name}.db", f"replay-{args.name}"
    async with AsyncExitStack() as stack:
        dead_letter = dead_letter_from_uri(args.dead_letter) if args.dead_letter else None
        if dead_letter is not None:
            stack.push_async_callback(dead_letter.close)
        sink = sink_from_uri(args.sink)
        stack.push_async_callback(sink.close)
        await run_checks(_resource_checks(args, source))
        reader = await _reader(args, source, stack)
        # once the resources exist (a misspelt stream neither binds the name nor leaves a lock
        # file), and before anything is read: a second run of the job is refused, and so is a
        # run of the name over another range (consumers.replay.local_job)
        stack.enter_context(job_lock(database, namespace, name=args.name))
        await bind_job(database, namespace, _job_identity(args), summary=_job_summary(args))
        store = SQLiteCheckpointStore(database, namespace=namespace)
        stack.push_async_callback(store.close)
        async with ProgressDisplay(args.name) as progress:
            job = ReplayJob(
                reader,
                sink,
                store,
                concurrency=args.concurrency,
                on_progress=progress.advance,
                transform=transform,
                dead_letter=dead_letter,
            )
            running = asyncio.ensure_future(job.run())
            with GracefulInterrupts(on_stop=running.cancel) as interrupts:
                try:
                    summary = await running
                except asyncio.CancelledError:
                    if not interrupts.interrupted:
                        raise
                    summary = None
        if summary is None:
            print(
                f"shardline replay: {args.name} interrupted; run the same command again to resume "
                "from its checkpoints",
                file=sys.stderr,
            )
            return INTERRUPTED
    for line in summary.lines():
        print(line)
    return summary.exit_status


def _job_identity(args: argparse.Namespace) -> dict[str, object]:
    """What the job replays and where to: a rerun under the same name must name the same."""
    return {
        "source": args.source,
        "sink": args.sink,
        "transform": args.transform,
        "shards": sorted(set(args.shard)),
        "partitions": sorted(set(args.partition)),
        "from_time": _utc(args.from_time),
        "to_time": _utc(args.to_time),
        "from_sequence": None if args.from_sequence is None else str(int(args.from_sequence)),
        "to_sequence": None if args.to_sequence is None else str(int(args.to_sequence)),
        "from_offset": args.from_offset,
        "to_offset": args.to_offset,
    }


def _utc(moment: datetime | None) -> str | None:
    """One spelling per instant, whatever time zone the argument was given in."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _job_summary(args: argparse.Namespace) -> str:
    """The job's identity in words, without credentials or URI options (it is stored and shown)."""
    words = [_bare(args.source)]
    for option, value in _job_identity(args).items():
        if option in ("source", "sink", "transform") or value in (None, []):
            continue
        shown = ",".join(map(str, value)) if isinstance(value, list) else value
        words.append(f"--{option.replace('_', '-').removesuffix('s')} {shown}")
    words.append(f"into {_bare(args.sink)}")
    if args.transform:
        words.append(f"through {args.transform}")
    return " ".join(words)


def _bare(uri: str) -> str:
    """``uri`` without ``user:password@`` and without its query (options may carry tokens)."""
    return redact_url(uri).split("?", 1)[0]


async def _reader(args: argparse.Namespace, source: ReplaySource, stack: AsyncExitStack) -> RangeReader:
    """The range reader SOURCE names (validated before any client is created)."""
    if source.kafka is not None:
        from consumers.replay.kafka_range import KafkaRangeReader, offset_ranges

        client = _kafka_client(source.kafka)
        ranges = await offset_ranges(
            client,
            source.kafka.topics[0],
            partitions=args.partition,
            from_offset=args.from_offset,
            to_offset=args.to_offset,
            from_time=args.from_time,
            to_time=args.to_time,
        )
        return KafkaRangeReader(ranges, client)

    from shardline.clients import aiobotocore_client

    if source.kinesis_stream is not None:
        from consumers.kinesis.session import reader_client
        from consumers.replay.kinesis_range import KinesisRangeReader
        from consumers.replay.window_notes import window_notes

        window = _kinesis_window(args)
        kinesis = await stack.enter_async_context(reader_client())
        for note in await window_notes(kinesis, source.kinesis_stream, window):
            print(f"shardline replay: {args.name}: note: {note}", file=sys.stderr, flush=True)
        return KinesisRangeReader(
            kinesis,
            source.kinesis_stream,
            window,
            shard_ids=args.shard,
            calls_per_second=args.max_calls_per_second,
        )

    from consumers.replay.ranges import S3ArchiveReader

    assert source.s3_bucket is not None
    s3 = await stack.enter_async_context(aiobotocore_client("s3"))
    return S3ArchiveReader(s3, source.s3_bucket, source.s3_prefix)


command = Command(
    name="replay",
    help="Replay a stream range or backfill an archive into a sink.",
    configure=_configure,
    run=_run,
)
