"""``stream-bench``: run, hotshards, compare and peers.

``stream-bench run`` with no arguments benchmarks the embedded local target (moto's Kinesis
in this process, behind the limit-enforcing gateway) for 20 seconds and writes
``result.json`` and ``report.html`` to ``--out``.  Errors print one line and exit non-zero;
payloads and credentials are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import gc
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from benchmarks.targets import BOOTSTRAP_ENV
from shardline.cli import OneLineArgumentParser, package_version
from shardline.errormap import map_aws_errors, map_kafka_errors
from shardline.errors import (
    ConfigurationError,
    MissingResourceError,
    ResourceNotFoundError,
    ShardlineError,
)
from shardline.extras import MissingExtraError, extra_for_module, require_module
from shardline.interrupts import GracefulInterrupts

__all__ = ["build_parser", "main"]


def _rate(text: str) -> float | None:
    if text in ("unbounded", "max", "0"):
        return None
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("rate must be positive or 'unbounded'")
    return value


BATCH_INDEX_ENV = "AWS_BATCH_JOB_ARRAY_INDEX"
BATCH_JOB_ENV = "AWS_BATCH_JOB_ID"
"""An array job's child has ``PARENT:INDEX`` here: the parent's id is the same for every worker."""


def _batch_run_id() -> str | None:
    """The AWS Batch array job's id (without a child's ``:INDEX``), shared by its workers; ``None``
    outside AWS Batch or for an id that is not the plain word Batch uses."""
    parent = os.environ.get(BATCH_JOB_ENV, "").partition(":")[0]
    return parent if re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", parent) else None


def _worker_id(text: str) -> int:
    if text == "aws-batch":
        text = os.environ.get(BATCH_INDEX_ENV, "")
        if not text:
            raise argparse.ArgumentTypeError(f"--worker-id aws-batch needs ${BATCH_INDEX_ENV} (an array job)")
    if not text.isdigit():
        raise argparse.ArgumentTypeError("worker id must be a number >= 0 or 'aws-batch'")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="stream-bench", description="Benchmark Kinesis and MSK ingestion.")
    parser.add_argument("--version", action="version", version=f"stream-bench {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the IoT telemetry workload and report")
    run.add_argument("--target", choices=("local", "kinesis", "msk"), default="local")
    run.add_argument("--stream", help="Kinesis stream (created if missing; default: a new one)")
    run.add_argument("--topic", help="Kafka topic for --target msk (created if missing; default: a new one)")
    run.add_argument(
        "--bootstrap", help=f"Kafka bootstrap servers for --target msk (default: ${BOOTSTRAP_ENV})"
    )
    run.add_argument(
        "--kafka-security",
        choices=("plaintext", "tls", "msk-iam"),
        default="plaintext",
        help="how --target msk connects (default plaintext, for a local broker)",
    )
    run.add_argument("--shards", type=int, default=4, help="shards (or partitions) of a new stream")
    run.add_argument("--duration", type=float, default=20.0, help="seconds of producing (default 20)")
    run.add_argument("--rate", type=_rate, default=2000.0, help="records/s, or 'unbounded' (default 2000)")
    run.add_argument("--record-size", type=int, default=256, help="bytes per record (default 256)")
    run.add_argument("--keys", type=int, default=1000, help="device ids (default 1000)")
    run.add_argument("--skew", default="zipf:1.1", help="zipf:S or uniform (default zipf:1.1)")
    run.add_argument(
        "--key-strategy", default="device", help="device | random | round-robin | salted:N (default device)"
    )
    run.add_argument(
        "--aggregate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="KPL aggregation (Kinesis targets; default on)",
    )
    run.add_argument(
        "--consumer",
        choices=("polling", "efo", "both", "none"),
        default="polling",
        help="readers per shard; both = one polling and one EFO reader, latencies side by side",
    )
    run.add_argument("--payload", choices=("binary", "json"), default="binary")
    run.add_argument(
        "--limits-percent",
        type=float,
        default=100.0,
        help=(
            "local gateway limits, %% of AWS's; the bench's producer pacing and its readers' "
            "GetRecords budget scale with them"
        ),
    )
    run.add_argument(
        "--embedded-target-process",
        action="store_true",
        help="run the embedded local target in a child process, so client CPU is measured alone",
    )
    run.add_argument("--out", default="bench-results", help="directory for result.json and report.html")
    run.add_argument(
        "--generator",
        choices=("batch", "per-record"),
        default="batch",
        help="batch: one send_many per pacing tick (default); per-record: one send() per record",
    )
    run.add_argument("--workers", type=int, default=1, help="worker processes, each with its own shards")
    run.add_argument(
        "--worker-id",
        type=_worker_id,
        help="run only this worker of --workers and write its partial result to --out (one machine's "
        "part); aws-batch: the array index of an AWS Batch array job ($AWS_BATCH_JOB_ARRAY_INDEX)",
    )

    hot = sub.add_parser("hotshards", help="per-shard load and hot keys of an existing stream")
    hot.add_argument("--stream", required=True)
    hot.add_argument("--duration", type=float, default=60.0)
    hot.add_argument("--from-trim-horizon", action="store_true", help="read retained data instead of LATEST")
    hot.add_argument("--json", dest="json_out", help="also write the analysis to this file")
    hot.add_argument(
        "--consumer", choices=("polling", "efo"), default="polling", help="how to read (default polling)"
    )
    hot.add_argument("--endpoint", help="Kinesis endpoint URL (default: the standard AWS configuration)")
    hot.add_argument(
        "--until-caught-up",
        action="store_true",
        help="stop each shard's read at its tip (polling; --duration stays the upper bound)",
    )

    merge = sub.add_parser("merge", help="merge the workers' partial results into one result and report")
    merge.add_argument("source", help="directory or s3://bucket/prefix/RUN/ holding partial-*.json")
    merge.add_argument("--out", default="bench-results", help="directory for result.json and report.html")

    compare = sub.add_parser("compare", help="compare two result.json files")
    compare.add_argument("a")
    compare.add_argument("b")

    peers = sub.add_parser("peers", help="Shardline's clients and peer clients side by side")
    peers.add_argument("--family", choices=("kinesis", "kafka"), default="kinesis")
    peers.add_argument("--clients", help="comma-separated client names (default: every client of the family)")
    peers.add_argument("--records", type=int, default=50_000, help="records per client (default 50000)")
    peers.add_argument("--record-size", type=int, default=100)
    peers.add_argument("--keys", type=int, default=1000)
    peers.add_argument("--shards", type=int, default=4, help="shards (or partitions) of each fresh stream")
    peers.add_argument("--endpoint", help="Kinesis endpoint URL (default: start a local kinesalite)")
    peers.add_argument("--bootstrap", help="Kafka bootstrap servers (default: start a local Tansu broker)")
    peers.add_argument("--out", default="bench-results", help="directory for peers.json")
    peers.add_argument(
        "--client-timeout", type=float, default=600.0, help="seconds before a stuck client is stopped"
    )
    return parser


def _run_options(args: argparse.Namespace) -> Any:
    from benchmarks.run import RunOptions, check_consumer_supported
    from benchmarks.workload import Skew, WorkloadSpec

    if args.target == "msk" and args.aggregate:
        raise ConfigurationError("--aggregate is KPL aggregation, a Kinesis format; not with --target msk")
    if args.target != "msk" and args.topic:
        raise ConfigurationError("--topic is for --target msk; Kinesis targets take --stream")
    if args.embedded_target_process and args.target != "local":
        raise ConfigurationError("--embedded-target-process applies to --target local only")
    if args.workers > 1 and args.target == "msk":
        raise ConfigurationError("--workers applies to Kinesis targets (local, kinesis)")
    if args.worker_id is not None and (args.target != "kinesis" or not args.stream):
        raise ConfigurationError(
            "--worker-id runs one machine's part against a shared stream: it needs --target kinesis "
            "and --stream NAME (the same on every machine)"
        )
    workload = WorkloadSpec(
        keys=args.keys,
        skew=Skew.parse(args.skew),
        record_size=args.record_size,
        rate=args.rate,
        duration=args.duration,
        payload_format=args.payload,
    )
    options = RunOptions(
        target=args.target,
        stream=(args.topic or args.stream) if args.target == "msk" else args.stream,
        shards=args.shards,
        workload=workload,
        key_strategy=args.key_strategy,
        aggregate=args.target != "msk" if args.aggregate is None else args.aggregate,
        consumer=args.consumer,
        limits_percent=args.limits_percent if args.target == "local" else 100.0,
        generator=args.generator,
        workers=args.workers,
        worker_id=args.worker_id or 0,
        run_id=_batch_run_id() if args.worker_id is not None else None,
    )
    check_consumer_supported(options, args.target)
    return options


def _cmd_run(args: argparse.Namespace) -> int:
    from benchmarks.gateway import ShardLimits
    from benchmarks.outfiles import output_dir
    from benchmarks.run import run_kinesis
    from benchmarks.run_msk import run_msk
    from benchmarks.targets import (
        KinesisTarget,
        embedded_local_target,
        embedded_local_target_process,
        kafka_target,
    )

    options = _run_options(args)
    if args.worker_id is not None:
        return _run_one_worker(options, args.out)
    out = output_dir(args.out)
    if args.target == "msk":
        target = kafka_target(args.bootstrap, args.kafka_security)
        print(f"stream-bench: --target msk, bootstrap {target.bootstrap}", file=sys.stderr)
        return _print_result(_write_files(asyncio.run(run_msk(options, target)), out), out)
    else:
        target_cm: contextlib.AbstractContextManager[KinesisTarget]
        if args.target == "local":
            limits = ShardLimits(scale_percent=args.limits_percent)
            where = "a child process" if args.embedded_target_process else "this process"
            print(
                f"stream-bench: starting the embedded local target (moto + limit gateway) in {where}",
                file=sys.stderr,
            )
            target_cm = (
                embedded_local_target_process(limits)
                if args.embedded_target_process
                else embedded_local_target(limits)
            )
        else:
            target_cm = contextlib.nullcontext(KinesisTarget("kinesis", None))
        with target_cm as kinesis:
            if options.workers > 1:
                from benchmarks.workers import run_workers

                print(f"stream-bench: {options.workers} worker processes", file=sys.stderr)
                outcome = run_workers(options, kinesis)
            else:
                from benchmarks.targetwatch import unless_target_dies

                running = run_kinesis(options, kinesis)
                outcome = asyncio.run(
                    unless_target_dies(running, kinesis.process_sentinel, kinesis.process_exit_code)
                )
            # written before the embedded target's teardown, which an interrupted run waits for last
            result = _write_files(outcome, out)
    return _print_result(result, out)


def _write_result(outcome: Any, out: Path) -> int:
    return _print_result(_write_files(outcome, out), out)


def _write_files(outcome: Any, out: Path) -> dict[str, Any]:
    """Build, validate and write result.json and report.html; return the result."""
    from benchmarks.outfiles import replace_files
    from benchmarks.report import render_html
    from benchmarks.result import build_result, validate_result

    result = build_result(outcome)
    validate_result(result)
    replace_files(
        {
            out / "result.json": json.dumps(result, indent=2).encode(),
            out / "report.html": render_html(result).encode("utf-8"),
        }
    )
    return result


_FREEZE_AT_EXIT: list[bool] = []


def _freeze_heap_at_exit() -> None:
    if not _FREEZE_AT_EXIT:
        _FREEZE_AT_EXIT.append(True)
        atexit.register(gc.freeze)


def _print_result(result: dict[str, Any], out: Path) -> int:
    from benchmarks.report import print_summary

    print_summary(result, Console(stderr=False))
    print(f"result JSON: {(out / 'result.json').resolve()}\nHTML report: {(out / 'report.html').resolve()}")
    # The run leaves a large heap (botocore's models, the embedded emulator's state); the
    # interpreter's collections on the way out would take seconds and free nothing that matters,
    # so an interrupted run would exit long after its result is written.  Freeze it at exit
    # (not now: a program that called this in-process keeps a collector that works).
    _freeze_heap_at_exit()
    if result["interrupted"]:
        return 130
    if result["summary"]["records_acked"] == 0:
        # a result is written either way; a script must not take this run for a measurement
        print(f"stream-bench: {result['bound_by']['explanation']}", file=sys.stderr)
        return 1
    return 0


def _run_one_worker(options: Any, where: str) -> int:
    """One machine's part of a multi-machine run: its shards and keys, written as a partial."""
    from benchmarks.merge import check_partial_bucket, partial_from_outcome, write_partial
    from benchmarks.outfiles import output_dir
    from benchmarks.run import run_kinesis
    from benchmarks.targets import KinesisTarget

    # refused now, not after the run
    if where.startswith("s3://"):
        check_partial_bucket(where)
    else:
        output_dir(where)
    print(
        f"stream-bench: worker {options.worker_id} of {options.workers} on stream {options.stream}",
        file=sys.stderr,
    )
    outcome = asyncio.run(run_kinesis(options, KinesisTarget("kinesis", None)))
    print(f"partial result: {write_partial(partial_from_outcome(outcome), where)}")
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from benchmarks.merge import merge_partials, read_named_partials
    from benchmarks.outfiles import output_dir

    def progress(line: str) -> None:
        print(f"stream-bench merge: reading partial {line}", file=sys.stderr, flush=True)

    out = output_dir(args.out)  # refused before every partial is fetched and merged
    named = read_named_partials(args.source, progress=progress)
    partials = [partial for _, partial in named]
    shards = len({shard for partial in partials for shard in partial["shard_ids"]})
    print(
        f"stream-bench merge: merging {len(partials)} partials ({shards} shards)", file=sys.stderr, flush=True
    )
    outcome = merge_partials(partials, [source for source, _ in named])
    return _write_result(outcome, out)


def _cmd_hotshards(args: argparse.Namespace) -> int:
    from benchmarks.hotshards import print_hot_shards, scan_hot_shards
    from shardline.clients import aiobotocore_client

    interrupted: list[bool] = []

    async def scan() -> dict[str, Any]:
        stop = asyncio.Event()
        message = "stream-bench hotshards: interrupted; analysing what was read so far"
        with GracefulInterrupts(on_stop=stop.set, message=message) as interrupts:
            async with aiobotocore_client("kinesis", endpoint_url=args.endpoint) as client:
                analysis = await scan_hot_shards(
                    client,
                    args.stream,
                    args.duration,
                    from_trim_horizon=args.from_trim_horizon,
                    reader=args.consumer,
                    until_caught_up=args.until_caught_up,
                    stop=stop,
                )
            interrupted.append(interrupts.interrupted)
            return analysis

    try:
        with map_aws_errors("kinesis"):
            analysis = asyncio.run(scan())
    except ResourceNotFoundError as exc:
        raise MissingResourceError("Kinesis stream", args.stream, "--stream", service="kinesis") from exc
    console = Console(soft_wrap=not sys.stdout.isatty())  # piped: one line per shard, never wrapped
    print_hot_shards(analysis, console)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(analysis, indent=2))
    return 130 if any(interrupted) else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from benchmarks.compare import compare_results, differences, print_comparison
    from benchmarks.result import validate_result

    results = [_load_result(path, validate_result) for path in (args.a, args.b)]
    print_comparison(compare_results(results[0], results[1]), changed=differences(results[0], results[1]))
    return 0


def _load_result(path: str, validate: Any) -> dict[str, Any]:
    """A result.json, or a ConfigurationError that says what is wrong with the file."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: no such file (give two result.json files)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigurationError(f"{path}: not a stream-bench result.json ({type(exc).__name__})") from None
    try:
        validate(document)
    except Exception as exc:  # noqa: BLE001 - jsonschema.ValidationError: long, nested message
        where = "/".join(str(part) for part in getattr(exc, "absolute_path", ()))
        detail = f" at {where}" if where else ""
        raise ConfigurationError(f"{path}: not a valid stream-bench result.json{detail}") from None
    result: dict[str, Any] = document
    return result


# The client libraries each `stream-bench peers` family compares (the bench-peers extra).
_PEER_MODULES = {
    "kinesis": ("aiokpl", "kinesis", "aws_kinesis_agg"),
    "kafka": ("aiokafka", "confluent_kafka"),
}


def _cmd_peers(args: argparse.Namespace) -> int:
    from benchmarks.outfiles import output_dir
    from benchmarks.peers.runner import (
        PeerRow,
        PeerWorkload,
        available_peers,
        rank_rows,
        run_kafka_peers,
        run_kinesis_peers,
    )

    for module in _PEER_MODULES[args.family]:  # before any emulator starts
        require_module(module, extra_for_module(module, prefer="bench-peers") or "bench-peers")
    names = available_peers(args.family)
    if isinstance(names, str):
        print(f"stream-bench peers: {names}", file=sys.stderr)
        return 2
    if args.clients:
        wanted = [name.strip() for name in args.clients.split(",") if name.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise ConfigurationError(f"unknown {args.family} clients {unknown}; choose from {list(names)}")
        names = tuple(wanted)
    workload = PeerWorkload(
        records=args.records, record_size=args.record_size, keys=args.keys, shards=args.shards
    )
    out = output_dir(args.out)

    def progress(row: PeerRow) -> None:
        figure = (
            row.error or f"{row.records_per_sec:.0f} records/s, {row.cpu_us_per_record:.1f} CPU-us/record"
        )
        print(f"stream-bench peers: {row.client} ({row.role}): {figure}", file=sys.stderr, flush=True)

    with _peer_server(args) as address:
        if args.family == "kafka":
            rows = run_kafka_peers(address, workload, names, on_row=progress, timeout=args.client_timeout)
        else:
            rows = run_kinesis_peers(address, workload, names, on_row=progress, timeout=args.client_timeout)
    ranked = rank_rows(rows)
    document = {
        "family": args.family,
        "server": "given" if (args.endpoint or args.bootstrap) else _LOCAL_PEER_SERVER[args.family],
        "workload": {
            "records": args.records,
            "record_size": args.record_size,
            "keys": args.keys,
            "shards": args.shards,
        },
        "cpu_method": "user+sys CPU time of each client's own process over its timed part",
        "rows": ranked,
    }
    json_path = out / "peers.json"
    json_path.write_text(json.dumps(document, indent=2, default=str))
    _print_peers_table(args, ranked)
    print(f"peers JSON: {json_path.resolve()}")
    return 0 if any(row["error"] is None for row in ranked) else 1


_LOCAL_PEER_SERVER = {"kinesis": "kinesalite", "kafka": "tansu"}


def _print_peers_table(args: argparse.Namespace, ranked: list[dict[str, Any]]) -> None:
    from rich.table import Table

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}x"

    table = Table(
        title=f"stream-bench peers ({args.family}, {args.records} x {args.record_size} B, {args.keys} keys)"
    )
    table.add_column("client", no_wrap=True)
    table.add_column("role", no_wrap=True)
    for column in ("records/s", "CPU-us/record", "rate vs best peer", "CPU vs best peer"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("note")
    for row in ranked:
        failed = row["error"] is not None
        table.add_row(
            escape(str(row["client"])),
            escape(str(row["role"])),
            "-" if failed else f"{row['records_per_sec']:.0f}",
            "-" if failed else f"{row['cpu_us_per_record']:.2f}",
            ratio(row["vs_best_peer_rate"]),
            ratio(row["vs_best_peer_cpu"]),
            escape(str(row["error"] or "")),
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 132))
    console.print(table)
    console.print(
        "rate vs best peer: records/s over the fastest peer's (higher is better); CPU vs best peer: "
        "CPU-us per record over the most frugal peer's (lower is better); peers = clients other than "
        "Shardline's, in the same role"
    )


@contextlib.contextmanager
def _peer_server(args: argparse.Namespace) -> Iterator[str]:
    """The given endpoint or bootstrap, or a local kinesalite / Tansu started and stopped by handle."""
    given = args.bootstrap if args.family == "kafka" else args.endpoint
    if given:
        if args.family == "kinesis":  # the peer libraries sign with the same credentials
            from shardline.clients import refuse_plaintext_endpoint

            refuse_plaintext_endpoint("kinesis", given)
        yield given
        return
    import tempfile

    from benchmarks.targets import ensure_dummy_aws_credentials
    from shardline.local.services import start_server

    ensure_dummy_aws_credentials()
    engine = _LOCAL_PEER_SERVER[args.family]
    print(f"stream-bench peers: starting a local {engine}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="stream-bench-peers-") as run_dir:
        handle = start_server(engine, Path(run_dir))
        try:
            yield handle.endpoint
        finally:
            handle.stop(timeout=10.0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments:  # a bare `stream-bench` asks what there is
        parser.print_help()
        return 0
    args = parser.parse_args(arguments)
    handlers = {
        "run": _cmd_run,
        "hotshards": _cmd_hotshards,
        "compare": _cmd_compare,
        "peers": _cmd_peers,
        "merge": _cmd_merge,
    }
    try:
        # botocore / confluent-kafka errors become Shardline errors: one line, not a traceback.
        with map_aws_errors(), map_kafka_errors():
            return handlers[args.command](args)
    except (ConfigurationError, MissingResourceError) as exc:
        print(f"stream-bench: {exc}", file=sys.stderr)
        return 2
    except MissingExtraError:
        raise  # benchmarks.entry reports it in one line
    except ShardlineError as exc:
        print(f"stream-bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
