"""``shardline replay plan | run | status``: a replay planned into slices that run anywhere.

Examples::

    shardline replay plan s3://archive/2024/ --slices 8 --out s3://jobs/backfill-2024.json \\
        --name backfill-2024 --sink dynamodb://devices --checkpoint "dynamodb://replay?create_table=true" \\
        --dead-letter s3://dead-letters/backfill-2024/ --max-write-records-per-second 2000
    shardline replay plan kinesis://telemetry --from 2024-05-01T00:00:00+00:00 \\
        --to 2024-05-08T00:00:00+00:00 --slices 64 --out plan.json --name fix-may ...
    shardline replay run --manifest s3://jobs/backfill-2024.json --slice 3
    AWS_BATCH_JOB_ARRAY_INDEX=3 shardline replay run --manifest s3://jobs/backfill-2024.json
    shardline replay run --manifest plan.json --workers 4
    shardline replay status --manifest s3://jobs/backfill-2024.json

Exit status of ``run``: 0 the slice (every slice, with ``--workers``) finished; 1 the slice
(or a worker) failed; 2 bad arguments or a manifest that does not belong to the job's
checkpoint namespace; 3 the slice is held by a live runner; 130 stopped by Ctrl-C or SIGTERM
(the slice is recorded as failed and given up at once; rerun to resume).  ``status``: 0 done, 3 running,
4 failed (a slice failed, or its runner died), 5 pending; 1 the store could not be read, 2
bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from shardline.cli import EXIT_FAILED, OneLineArgumentParser, aware_time_argument, exit_status_for
from shardline.errormap import map_aws_errors, map_kafka_errors
from shardline.errors import (
    ConfigurationError,
    ResourceNotFoundError,
    ShardlineError,
)
from shardline.interrupts import INTERRUPTED, GracefulInterrupts
from shardline.logformat import setup_logging
from shardline.parentwatch import stop_when_orphaned

if TYPE_CHECKING:
    from consumers.preflight import ResourceCheck

__all__ = ["ACTIONS", "build_parser", "main"]

ACTIONS = ("plan", "run", "status")

EXIT_HELD = 3


def _plan_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="kinesis://STREAM, kafka://BOOTSTRAP/TOPIC or s3://BUCKET/PREFIX")
    parser.add_argument("--slices", type=int, required=True, help="how many slices to cut the range into")
    parser.add_argument("--out", required=True, help="where to write the manifest: a file or s3://BUCKET/KEY")
    parser.add_argument("--name", required=True, help="job name; its checkpoint namespace is replay-NAME")
    parser.add_argument("--sink", required=True, help="sink URI, as for consume")
    parser.add_argument(
        "--checkpoint", required=True, help="shared checkpoint store: dynamodb://TABLE[?create_table=true]"
    )
    parser.add_argument("--dead-letter", help="dead-letter URI (s3://BUCKET/PREFIX or file:///PATH.jsonl)")
    parser.add_argument("--transform", help="module:function applied to each record before the sink")
    parser.add_argument(
        "--from", dest="start", type=aware_time_argument, help="ISO-8601 start, with time zone"
    )
    parser.add_argument(
        "--to", dest="end", type=aware_time_argument, help="ISO-8601 end (exclusive); default now"
    )
    parser.add_argument("--shard", action="append", default=[], help="Kinesis: only these shards")
    parser.add_argument("--partition", type=int, action="append", default=[], help="Kafka: only these")
    parser.add_argument("--from-offset", type=int, help="Kafka: first offset")
    parser.add_argument("--to-offset", type=int, help="Kafka: end offset (exclusive)")
    parser.add_argument("--max-read-records-per-second", type=float, help="whole-job read cap")
    parser.add_argument("--max-write-records-per-second", type=float, help="whole-job write cap")
    parser.add_argument(
        "--max-calls-per-second", type=float, default=1.0, help="Kinesis GetRecords calls/s per shard (of 5)"
    )
    parser.add_argument(
        "--lease-seconds", type=float, default=30.0, help="a dead runner's slice can be taken over after this"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="units of a slice read at once")


def _run_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="the manifest (file or s3://BUCKET/KEY)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--slice", type=int, help="slice index (default: $AWS_BATCH_JOB_ARRAY_INDEX)")
    which.add_argument("--workers", type=int, help="run every slice as local processes, N at a time")
    parser.add_argument(
        "--wait-held",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep trying this long while another runner holds the slice (default 0: refuse at once)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log level on stderr (default WARNING; the AWS SDK's loggers stay at WARNING or above)",
    )
    # given by `--workers N` to the slice runners it starts (consumers.replay.workers)
    parser.add_argument("--supervisor-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--manifest-hash", help=argparse.SUPPRESS)


def _status_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="the manifest (file or s3://BUCKET/KEY)")


def build_parser(prog: str, action: str) -> argparse.ArgumentParser:
    helps = {
        "plan": "Cut a bounded source into slices of about equal work and write the manifest.",
        "run": "Run one slice of a manifest (or every slice as local workers).",
        "status": "Per-slice and total progress of a planned job, from the shared store.",
    }
    parser = OneLineArgumentParser(prog=f"{prog} {action}", description=helps[action])
    {"plan": _plan_parser, "run": _run_parser, "status": _status_parser}[action](parser)
    return parser


def main(action: str, args: argparse.Namespace) -> int:
    try:
        with map_aws_errors(), map_kafka_errors():
            return asyncio.run(_ACTIONS[action](args))
    except ShardlineError as exc:
        return _fail(exc)


def _fail(error: ShardlineError) -> int:
    from consumers.replay.ledger import SliceHeldError

    print(f"shardline replay: {type(error).__name__}: {error}", file=sys.stderr)
    if isinstance(error, SliceHeldError):
        return EXIT_HELD
    return exit_status_for(error)


# --- plan -----------------------------------------------------------------------------------


async def _plan(args: argparse.Namespace) -> int:
    from consumers.replay.manifest import (
        MAX_LEASE_SECONDS,
        MIN_LEASE_SECONDS,
        Manifest,
        RateCaps,
        check_job_name,
    )
    from consumers.replay.plan import parse_source, save_manifest

    source = parse_source(args.source)
    if args.slices < 1:
        raise ConfigurationError("--slices must be at least 1")
    if not args.checkpoint.startswith("dynamodb://"):
        raise ConfigurationError("--checkpoint must be a shared store: dynamodb://TABLE")
    # a name no runner can use is refused now, before the source is listed and a manifest written
    check_job_name(args.name, args.checkpoint)
    if args.concurrency < 1:
        raise ConfigurationError("--concurrency must be at least 1")
    if not MIN_LEASE_SECONDS <= args.lease_seconds <= MAX_LEASE_SECONDS:
        raise ConfigurationError(
            f"--lease-seconds must be from {MIN_LEASE_SECONDS:g} to {MAX_LEASE_SECONDS:g}"
        )
    caps = RateCaps(
        read_records_per_second=args.max_read_records_per_second,
        write_records_per_second=args.max_write_records_per_second,
        kinesis_calls_per_second=args.max_calls_per_second,
    )
    from consumers.sinks.uri import sink_from_uri

    sink_from_uri(args.sink)  # a malformed sink URI is refused now, not on every runner
    if args.transform:
        from consumers._pipeline_transform import load_transform

        load_transform(args.transform)
    # the source is what plan reads: a missing one is named in one line, exit 2, as by `replay`
    from consumers.preflight import run_checks

    await run_checks([_source_check(source)])
    slices, bounds = await _cut(source, args)
    manifest = Manifest(
        name=args.name,
        source=args.source,
        sink=args.sink,
        checkpoint=args.checkpoint,
        slices=slices,
        dead_letter=args.dead_letter,
        transform=args.transform,
        caps=caps,
        lease_seconds=args.lease_seconds,
        concurrency=args.concurrency,
        bounds=bounds,
    )
    await save_manifest(manifest, args.out)
    units = sum(len(piece.units) for piece in slices)
    weights = [piece.weight for piece in slices]
    print(f"manifest: {args.out}")
    print(f"hash: {manifest.hash}")
    print(f"slices: {len(slices)} ({units} units; work per slice {min(weights)}..{max(weights)})")
    return 0


def _source_check(source: Any) -> ResourceCheck:
    """The lookup of the stream, topic or archive bucket a plan is cut from."""
    from consumers.preflight import kafka_topics_check, kinesis_stream_check, s3_bucket_check
    from consumers.replay.plan import kafka_source_client

    if source.kind == "s3":
        return s3_bucket_check(source.location, "the SOURCE argument")
    if source.kind == "kinesis":
        return kinesis_stream_check(source.location, "the SOURCE argument")
    return kafka_topics_check([source.path], "the SOURCE argument", kafka_source_client(source.uri))


async def _cut(source: Any, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    from consumers.replay.plan import kafka_partitions, kafka_source_client, plan_kafka, plan_kinesis, plan_s3
    from shardline.clients import aiobotocore_client

    if source.kind != "kinesis" and args.shard:
        raise ConfigurationError("--shard applies to kinesis:// sources only")
    if source.kind != "kafka" and (
        args.partition or args.from_offset is not None or args.to_offset is not None
    ):
        raise ConfigurationError("--partition/--from-offset/--to-offset apply to kafka:// sources only")
    if source.kind == "s3":
        if args.start or args.end:
            raise ConfigurationError("an S3 archive backfill reads whole objects: no --from/--to")
        async with aiobotocore_client("s3") as s3:
            slices = await plan_s3(s3, source.location, source.path, args.slices)
        return slices, {"bucket": source.location, "prefix": source.path}
    if source.kind == "kinesis":
        if args.start is None:
            raise ConfigurationError("a Kinesis plan needs --from (time windows are cut from it)")
        end = args.end or datetime.now(UTC)
        if end <= args.start:
            raise ConfigurationError("--to must be after --from")
        from consumers.kinesis.session import reader_client

        async with reader_client() as kinesis:
            slices = await plan_kinesis(
                kinesis, source.location, args.start, end, args.slices, shard_ids=args.shard
            )
        return slices, {"from": args.start.isoformat(), "to": end.isoformat()}
    if args.from_offset is None or args.to_offset is None or not 0 <= args.from_offset <= args.to_offset:
        raise ConfigurationError("a Kafka plan needs 0 <= --from-offset <= --to-offset")
    from consumers.replay.kafka_range import check_partitions

    client = kafka_source_client(source.uri)
    partitions = check_partitions(source.path, args.partition, await kafka_partitions(client, source.path))
    ranges = [(p, args.from_offset, args.to_offset) for p in partitions]
    slices = await plan_kafka(source.path, ranges, args.slices)
    return slices, {"from_offset": args.from_offset, "to_offset": args.to_offset, "partitions": partitions}


# --- run ------------------------------------------------------------------------------------


async def _run(args: argparse.Namespace) -> int:
    # the one logging set-up of every shardline command: botocore's DEBUG logs carry request
    # and response bodies, i.e. record payloads, so the SDK's loggers never go below WARNING
    setup_logging(args.log_level)
    # SIGTERM (AWS Batch stopping a child, `kill`, a supervisor stopping its workers) is handled
    # like Ctrl-C: the work is cancelled, a slice records that it stopped and gives up its claim,
    # a supervisor stops its workers, and the command exits 130 instead of dying on the spot
    work = asyncio.ensure_future(_run_manifest(args))
    with GracefulInterrupts(on_stop=work.cancel) as interrupts:
        if args.supervisor_pid is not None:
            # a slice runner of `--workers N`, in a session of its own: should its supervisor
            # die unannounced (SIGKILL), it stops as on SIGTERM and gives its claim up
            stop_when_orphaned(args.supervisor_pid, label="shardline replay run")
        try:
            return await work
        except asyncio.CancelledError:
            if not interrupts.interrupted:
                raise
    print(
        "shardline replay run: interrupted; run the same command again to resume from the "
        "slices' checkpoints",
        file=sys.stderr,
    )
    return INTERRUPTED


async def _run_manifest(args: argparse.Namespace) -> int:
    from consumers.replay.manifest import load_manifest

    manifest = await load_manifest(args.manifest)
    if args.manifest_hash is not None and manifest.hash != args.manifest_hash:
        from consumers.replay.ledger import ManifestMismatchError

        # the supervisor of `--workers N` started this runner for the manifest it read; the one
        # at the location now is another plan (replaced in between), whose slices it did not count
        raise ManifestMismatchError(
            f"the manifest at --manifest was replaced after the supervisor read it (hash "
            f"{manifest.hash[:12]}..., not {str(args.manifest_hash)[:12]}...): run the command again"
        )
    if args.workers is not None:
        from consumers.replay.workers import run_workers

        results = await run_workers(
            args.manifest, range(len(manifest.slices)), args.workers, manifest_hash=manifest.hash
        )
        failed = [result for result in results if result.returncode != 0]
        print(f"slices: {len(results)}, finished: {len(results) - len(failed)}, failed: {len(failed)}")
        for result in failed:
            print(f"slice {result.slice}: worker pid {result.pid} {result.cause}")
        return EXIT_FAILED if failed else 0
    index = args.slice
    if index is None:
        from_batch = os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX")
        if from_batch is None or not from_batch.isdigit():
            raise ConfigurationError("give --slice I (or run as an AWS Batch array child) or --workers N")
        index = int(from_batch)
    manifest.slice(index)  # out of range: refused before any network call
    from consumers.replay.progress import ProgressDisplay
    from consumers.replay.slices import run_slice

    if args.wait_held < 0:
        raise ConfigurationError("--wait-held must be >= 0")
    async with ProgressDisplay(f"{manifest.name} slice {index}") as progress:
        outcome = await run_slice(manifest, index, wait_held=args.wait_held, on_progress=progress.advance)
    counts = outcome.counts
    print(
        f"slice {index}: done; read {counts['read']}, written {counts['written']}, "
        f"duplicates {counts['duplicates']}, dead-lettered {counts['dead_lettered']}"
    )
    return 0


# --- status ---------------------------------------------------------------------------------


async def _status(args: argparse.Namespace) -> int:
    from consumers.checkpoint.dynamodb import table_name_for
    from consumers.replay.ledger import JobLedger, LedgerView
    from consumers.replay.manifest import load_manifest
    from consumers.replay.slices import dynamodb_settings
    from consumers.replay.status import job_status
    from shardline.clients import aiobotocore_client

    manifest = await load_manifest(args.manifest)
    table = table_name_for(unquote(urlsplit(manifest.checkpoint).netloc), manifest.namespace)
    endpoint_url, region_name = dynamodb_settings(manifest.checkpoint)
    async with aiobotocore_client("dynamodb", endpoint_url=endpoint_url, region_name=region_name) as dynamodb:
        try:
            view = await JobLedger(dynamodb, table).view()
        except ResourceNotFoundError:  # no slice ran yet: the job's table does not exist
            view = LedgerView(None, {}, {})
    status = job_status(manifest, view, time.time())
    for line in status.lines():
        print(line)
    return status.exit_code


_ACTIONS = {"plan": _plan, "run": _run, "status": _status}
