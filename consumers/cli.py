"""``shardline consume``: run a Kinesis stream or Kafka topic into a sink until SIGTERM/SIGINT.

    shardline consume kinesis://STREAM --checkpoint dynamodb://TABLE|sqlite:///PATH --sink URI
        [--mode polling|efo] [--consumer-name NAME] [--start trim_horizon|latest|at_timestamp:ISO]
        [--transform module:function] [--dead-letter URI] [--checkpoint-interval S]
        [--deaggregation kpl|never] [--max-user-records N] [--max-record-bytes N]
    shardline consume "kafka://BOOTSTRAP/TOPIC[,TOPIC...]?group=GROUP[&security=tls|msk-iam]
        [&session_timeout_ms=N][&max_poll_interval_ms=N]" --sink URI [--start trim_horizon|latest] ...

A Kafka source is a consumer-group member: the group balances partitions between the
processes started with the same ``group``, and acknowledged offsets are committed to the
group (``--checkpoint`` does not apply).  ``--start`` picks where a partition without a
committed offset starts (``trim_horizon`` = earliest).

Logs go to stderr, readable text on a terminal and JSON lines otherwise (``--log-format``;
never a record payload), with a progress line every ``--progress-interval`` seconds and a
"caught up" line when each shard first reaches the tip.  On SIGTERM or SIGINT the consumer
stops reading, drains the writes in flight, checkpoints and exits 0 (a second signal: 130 at
once); it exits 1 when records could be neither written nor dead-lettered, 2 on bad arguments
(reported before any network call) or a missing stream, topic, table or bucket.  Endpoints,
region and credentials come from the standard AWS configuration (``AWS_PROFILE``,
``AWS_REGION``, ``AWS_ENDPOINT_URL_KINESIS``, ``AWS_ENDPOINT_URL_DYNAMODB``...).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
import uuid
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from consumers._pipeline_transform import load_transform
from consumers.checkpoint.uri import open_checkpoint_store
from consumers.pipeline import SINK_RETRY_FOREVER, Pipeline, PipelineConfig, run_until_signal
from consumers.preflight import (
    MissingResourceError,
    ResourceCheck,
    dead_letter_check,
    dynamodb_table_check,
    kafka_topics_check,
    kinesis_stream_check,
    run_checks,
    sink_check,
)
from consumers.progress import ConsumeProgress
from consumers.sinks.base import Sink
from consumers.source import Source
from shardline.aggregation import DEFAULT_MAX_USER_RECORDS, DeaggregationPolicy
from shardline.cli import EXIT_FAILED, EXIT_REFUSED, Command, exit_status_for, parse_aware_time
from shardline.endpoints import redact_url
from shardline.errors import ConfigurationError, ShardlineError, ValidationError
from shardline.eventid import EventIdKey
from shardline.exporters.emf import DEFAULT_FLUSH_TIMEOUT, EmfExporter
from shardline.limits import DEFAULT_MAX_RECORD_BYTES
from shardline.logformat import LOG_FORMATS, JsonLogFormatter, setup_logging
from shardline.metrics import MetricsObserver, NullObserver
from shardline.retry import RetryPolicy
from shardline.validation import validate_topic_name

__all__ = [
    "JsonLogFormatter",
    "KafkaTarget",
    "command",
    "parse_kafka_uri",
    "parse_start",
    "parse_stream_uri",
]

logger = logging.getLogger("shardline.consume")


def parse_stream_uri(uri: str) -> str:
    """``kinesis://STREAM`` -> ``STREAM``."""
    prefix = "kinesis://"
    if not uri.startswith(prefix) or not uri[len(prefix) :].strip("/"):
        raise ConfigurationError(f"stream must be given as kinesis://STREAM, got {uri!r}")
    return uri[len(prefix) :].strip("/")


@dataclass(frozen=True, slots=True)
class KafkaTarget:
    """What a ``kafka://`` source URI names."""

    bootstrap_servers: str
    topics: tuple[str, ...]
    group: str
    security: str = "plaintext"
    session_timeout_ms: int | None = None
    max_poll_interval_ms: int | None = None


_KAFKA_TIMINGS = ("session_timeout_ms", "max_poll_interval_ms")
"""librdkafka timing options a ``kafka://`` URI may set; unset ones keep
:class:`~consumers.kafka.KafkaConsumerConfig`'s defaults, which also checks their ranges."""

_KAFKA_OPTIONS = {"group", "security", *_KAFKA_TIMINGS}


def parse_kafka_uri(uri: str, *, require_group: bool = True) -> KafkaTarget:
    """``kafka://host:port[,host:port]/topic[,topic]?group=G[&security=...][&session_timeout_ms=N]
    [&max_poll_interval_ms=N]``.

    ``require_group=False`` for commands that read without joining a group (replay, tail).
    """
    from shardline.kafka_config import refuse_kafka_user_info

    parts = urlsplit(uri)
    if parts.scheme != "kafka" or not parts.netloc:
        raise ConfigurationError(
            f"Kafka source must be given as kafka://BOOTSTRAP/TOPIC?group=GROUP, got {redact_url(uri)!r}"
        )
    refuse_kafka_user_info(uri)
    topics = tuple(topic for topic in parts.path.strip("/").split(",") if topic)
    if not topics:
        raise ConfigurationError("kafka:// source names no topic (kafka://BOOTSTRAP/TOPIC?group=GROUP)")
    for topic in topics:
        try:
            validate_topic_name(topic)
        except ValidationError as exc:
            raise ConfigurationError(f"kafka:// source: {exc}") from None
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - _KAFKA_OPTIONS
    if unknown:
        raise ConfigurationError(f"unknown kafka:// option(s): {', '.join(sorted(unknown))}")
    group = query.get("group", [""])[-1]
    if not group and require_group:
        raise ConfigurationError("kafka:// source needs ?group=GROUP (the consumer group to join)")
    security = query.get("security", ["plaintext"])[-1]
    if security not in ("plaintext", "tls", "msk-iam"):
        raise ConfigurationError("kafka:// security must be plaintext, tls or msk-iam")
    timings: dict[str, int] = {}
    for option in _KAFKA_TIMINGS:
        text = query.get(option, [None])[-1]
        if text is None:
            continue
        try:
            timings[option] = int(text)
        except ValueError as exc:
            raise ConfigurationError(f"{option} must be an integer") from exc
    return KafkaTarget(parts.netloc, topics, group, security, **timings)


def _kafka_source(
    target: KafkaTarget, start: str, observer: MetricsObserver, event_id_key: EventIdKey | None = None
) -> Any:
    """The consumer-group source for ``target`` (imports confluent-kafka only when asked)."""
    from consumers.kafka import KafkaConsumerConfig, KafkaSource
    from shardline.kafka_config import KafkaClientConfig

    lowered = start.lower()
    if lowered not in ("trim_horizon", "latest"):
        raise ConfigurationError("--start for a Kafka source is trim_horizon (earliest) or latest")
    security = _kafka_security(target)
    options: dict[str, Any] = {}
    for option in _KAFKA_TIMINGS:
        value = getattr(target, option)
        if value is not None:
            options[option] = value
    config = KafkaConsumerConfig(
        group_id=target.group,
        auto_offset_reset="earliest" if lowered == "trim_horizon" else "latest",
        event_id_key=event_id_key,
        **options,
    )
    return KafkaSource(
        target.topics,
        KafkaClientConfig(target.bootstrap_servers, security=security),
        config,
        observer=observer,
    )


def _kafka_security(target: KafkaTarget) -> Any:
    """The security value ``target`` names; plaintext to a host that is not loopback warns."""
    from shardline.kafka_config import security_named

    return security_named(target.security, target.bootstrap_servers, logger)


def parse_start(text: str) -> Any:
    """``trim_horizon`` | ``latest`` | ``at_timestamp:ISO-8601`` -> a StartPosition."""
    from consumers.kinesis import AT_TIMESTAMP, LATEST, TRIM_HORIZON

    lowered = text.lower()
    if lowered == "trim_horizon":
        return TRIM_HORIZON
    if lowered == "latest":
        return LATEST
    if lowered.startswith("at_timestamp:"):
        return AT_TIMESTAMP(parse_aware_time(text.split(":", 1)[1], "--start at_timestamp"))
    raise ConfigurationError("--start must be trim_horizon, latest or at_timestamp:ISO")


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "stream", metavar="SOURCE", help="kinesis://STREAM or kafka://BOOTSTRAP/TOPIC?group=GROUP"
    )
    parser.add_argument(
        "--checkpoint", help="dynamodb://TABLE or sqlite:///PATH (or memory://); Kinesis only, required there"
    )
    parser.add_argument("--sink", required=True, help="sink URI, e.g. file:///path.jsonl or dynamodb://TABLE")
    parser.add_argument("--mode", choices=("polling", "efo"), default="polling")
    parser.add_argument("--consumer-name", help="enhanced fan-out consumer name (required with --mode efo)")
    parser.add_argument("--start", default="trim_horizon", help="trim_horizon | latest | at_timestamp:ISO")
    parser.add_argument("--transform", help="module:function applied to every record")
    parser.add_argument("--dead-letter", help="dead-letter URI, e.g. s3://BUCKET/PREFIX or file:///dlq.jsonl")
    parser.add_argument("--checkpoint-interval", type=float, default=10.0, help="seconds between checkpoints")
    parser.add_argument("--namespace", help="checkpoint namespace (default: the live consumer's)")
    parser.add_argument(
        "--owner",
        help="lease owner name, stable across restarts and unique per live worker: a worker "
        "restarted under its name takes its leases back at once, under a new one after they "
        "expire (30 s) (default: host-pid-random)",
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=10_000,
        help="records read, not yet written, before reading pauses (plus the source's per-shard queue)",
    )
    parser.add_argument("--drain-timeout", type=float, default=None, help="seconds to drain on shutdown")
    parser.add_argument(
        "--sink-outage-limit",
        type=float,
        default=None,
        help="seconds the sink may stay unavailable before the consumer exits with status 1 "
        "(default: wait for it, reading paused)",
    )
    parser.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="auto",
        help="auto: readable text when stderr is a terminal, JSON lines otherwise",
    )
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=10.0,
        help="seconds between progress lines (records, lag, last checkpoint); 0 turns them off",
    )
    parser.add_argument(
        "--metrics",
        choices=("none", "emf"),
        default="none",
        help="emf: CloudWatch embedded metric format lines on stdout (logs stay on stderr)",
    )
    parser.add_argument("--metrics-interval", type=float, default=60.0, help="seconds between metric flushes")
    parser.add_argument(
        "--deaggregation",
        choices=("kpl", "never"),
        default="kpl",
        help="kpl: expand KPL aggregates (bounded); never: every record stays whole (streams fed with "
        "device bytes). Event ids are trusted only with SHARDLINE_EVENT_ID_KEY (docs/security.md)",
    )
    parser.add_argument(
        "--max-record-bytes",
        type=int,
        default=DEFAULT_MAX_RECORD_BYTES,
        help="the stream's maximum record size (raise it for streams configured above 1 MiB); "
        "an aggregate holding a larger inner record is dead-lettered whole",
    )
    parser.add_argument(
        "--max-user-records",
        type=int,
        default=DEFAULT_MAX_USER_RECORDS,
        help="user records allowed in one aggregate; a larger one is dead-lettered whole",
    )


def _sink_retry(outage_limit: float | None) -> RetryPolicy:
    """The pipeline's outage bound: wait for the sink (default) or give up after ``outage_limit`` s."""
    if outage_limit is None:
        return SINK_RETRY_FOREVER
    if not outage_limit > 0:
        raise ConfigurationError("--sink-outage-limit must be a positive number of seconds")
    return replace(SINK_RETRY_FOREVER, deadline=outage_limit)


async def _consume(args: argparse.Namespace) -> int:
    from consumers.sinks.uri import dead_letter_from_uri, sink_from_uri

    # every argument is checked before anything connects anywhere
    kafka = parse_kafka_uri(args.stream) if args.stream.startswith("kafka://") else None
    stream = None if kafka is not None else parse_stream_uri(args.stream)
    start = None if kafka is not None else parse_start(args.start)
    if kafka is None and not args.checkpoint:
        raise ConfigurationError("a Kinesis source needs --checkpoint dynamodb://TABLE or sqlite:///PATH")
    if kafka is not None and (args.checkpoint or args.mode != "polling"):
        raise ConfigurationError(
            "--checkpoint and --mode apply to Kinesis; Kafka commits offsets to its group"
        )
    if args.mode == "efo" and not args.consumer_name:
        raise ConfigurationError("--mode efo needs --consumer-name")
    transform = load_transform(args.transform) if args.transform else None
    deaggregation = DeaggregationPolicy(
        deaggregate=args.deaggregation == "kpl",
        max_user_records=args.max_user_records,
        max_record_bytes=args.max_record_bytes,
        event_id_key=EventIdKey.from_environment(),
    )
    config = PipelineConfig(
        checkpoint_interval=args.checkpoint_interval,
        max_in_flight_records=args.max_in_flight,
        drain_timeout=args.drain_timeout,
        sink_retry=_sink_retry(args.sink_outage_limit),
    )
    if args.metrics_interval <= 0:
        raise ConfigurationError("--metrics-interval must be positive")
    exporter = EmfExporter(stream=sys.stdout) if args.metrics == "emf" else None
    if args.progress_interval < 0:
        raise ConfigurationError("--progress-interval must be 0 (off) or positive")
    progress = ConsumeProgress(
        exporter if exporter is not None else NullObserver(),
        logger=logger,
        kafka_group=kafka.group if kafka is not None else None,
    )
    observer: MetricsObserver = progress
    owner = args.owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    store, must_exist = _checkpoint_store(args.checkpoint, args.namespace) if kafka is None else (None, None)
    source: Source
    if kafka is not None:
        source = _kafka_source(kafka, args.start, observer, deaggregation.event_id_key)
    else:
        from consumers.kinesis import KinesisSource
        from consumers.kinesis.config import ReaderConfig

        assert stream is not None and store is not None and start is not None
        source = KinesisSource(
            stream,
            store=store,
            owner=owner,
            mode=args.mode,
            consumer_name=args.consumer_name,
            start=start,
            observer=observer,
            config=ReaderConfig(deaggregation=deaggregation),
        )
    sink: Sink = sink_from_uri(args.sink, observer=observer)
    dead_letter = dead_letter_from_uri(args.dead_letter) if args.dead_letter else None
    try:
        await run_checks(_resource_checks(args, stream, kafka, must_exist))
    except BaseException:
        await _close_quietly(source, sink, dead_letter, store)
        raise
    pipeline = Pipeline(
        source, sink, config=config, dead_letter=dead_letter, transform=transform, observer=observer
    )
    flusher = (
        asyncio.create_task(_flush_periodically(exporter, args.metrics_interval))
        if exporter is not None
        else None
    )
    reporter = (
        asyncio.create_task(_report_periodically(progress, args.progress_interval))
        if args.progress_interval > 0
        else None
    )
    if kafka is not None:
        starting: dict[str, Any] = {
            "topics": ",".join(kafka.topics),
            "group": kafka.group,
            "owner": owner,
            "start": args.start,
        }
    else:
        starting = {"stream": stream, "mode": args.mode, "owner": owner, "start": str(start)}
    try:
        # "consumer starting" is logged once SIGTERM/SIGINT drain: a supervisor that signals
        # on seeing it must not meet the default action (killed, nothing checkpointed)
        status = await run_until_signal(
            pipeline, started=lambda: logger.info("consumer starting", extra=starting)
        )
    finally:
        if reporter is not None:
            reporter.cancel()
            progress.log()  # where it stopped
        try:
            if flusher is not None and exporter is not None:
                flusher.cancel()
                # waits (bounded) for the writer thread to write them: off the loop's thread
                await asyncio.to_thread(
                    _flush_metrics,
                    exporter,
                    "the last metrics could not be written",
                    timeout=DEFAULT_FLUSH_TIMEOUT,
                )
        finally:
            try:
                await source.close()  # run() closed it already; again in case it never started
            finally:
                await sink.close()
                if dead_letter is not None:
                    await dead_letter.close()
                if store is not None:
                    await store.close()
    stats = pipeline.stats
    logger.info(
        "consumer stopped",
        extra={
            "exit_status": status,
            "records_in": stats.records_in,
            "records_out": stats.records_out,
            "dead_lettered": stats.dead_lettered,
            "checkpoints": stats.checkpoints,
            "partitions_ended": stats.partitions_ended,
            "partitions_lost": stats.partitions_lost,
        },
    )
    return status


def _checkpoint_store(uri: str, namespace: str | None) -> tuple[Any, str | None]:
    """The checkpoint store ``--checkpoint`` names, and the table that must already exist.

    A missing DynamoDB lease table is created, as the KCL does (on-demand billing,
    point-in-time recovery), unless the URI says ``?create_table=false``; then the table is
    looked up before the consumer starts, and the second value names it.
    """
    from consumers.checkpoint.dynamodb import DynamoDBCheckpointStore

    options: dict[str, Any] = {}
    parts = urlsplit(uri) if "://" in uri else None
    dynamodb = parts is not None and parts.scheme.lower() == "dynamodb"
    if dynamodb and parts is not None and "create_table" not in parse_qs(parts.query):
        options["create_table"] = True
    store = open_checkpoint_store(uri, namespace=namespace, **options)
    must_exist = None
    if isinstance(store, DynamoDBCheckpointStore) and not store.creates_table:
        must_exist = store.table_name
    return store, must_exist


def _resource_checks(
    args: argparse.Namespace, stream: str | None, kafka: KafkaTarget | None, checkpoint_table: str | None
) -> list[ResourceCheck]:
    """What the arguments name and must exist before anything is read."""
    checks: list[ResourceCheck] = []
    if stream is not None:
        checks.append(kinesis_stream_check(stream, "the SOURCE argument"))
    if kafka is not None:
        from shardline.kafka_config import KafkaClientConfig

        client = KafkaClientConfig(kafka.bootstrap_servers, security=_kafka_security(kafka))
        checks.append(kafka_topics_check(kafka.topics, "the SOURCE argument", client))
    if checkpoint_table is not None:
        checks.append(dynamodb_table_check(checkpoint_table, "--checkpoint"))
    for check in (sink_check(args.sink), dead_letter_check(args.dead_letter) if args.dead_letter else None):
        if check is not None:
            checks.append(check)
    return checks


async def _close_quietly(source: Any, sink: Any, dead_letter: Any, store: Any) -> None:
    """Close what was built before a refused start (nothing was read or written)."""
    for closable in (source, sink, dead_letter, store):
        if closable is not None:
            with contextlib.suppress(Exception):
                await closable.close()


async def _report_periodically(progress: ConsumeProgress, interval: float) -> None:
    """A progress line every ``interval`` seconds (a timer; logging cannot fail the consumer)."""
    while True:
        await asyncio.sleep(interval)
        progress.log()


async def _flush_periodically(exporter: EmfExporter, interval: float) -> None:
    """Write the metrics gathered so far every ``interval`` seconds (a timer, not a sync point).

    Each flush only hands the documents to the exporter's writer thread: a stdout nobody reads
    blocks a write, and written from here it blocked the loop, so leases went unrenewed.  A
    write that fails (stdout closed, a full disk) is logged by the exporter; a flush that
    fails (its writer thread died) is logged here and tried again at the next interval.
    Raised here, it ended this task unnoticed: the consumer ran on without metrics, and the
    final flush raised it again and skipped closing the source, sink and store.
    """
    failed = False
    while True:
        await asyncio.sleep(interval)
        failed = not _flush_metrics(exporter, "writing metrics failed; trying again every interval", failed)


def _flush_metrics(exporter: EmfExporter, message: str, quiet: bool = False, *, timeout: float = 0.0) -> bool:
    """One flush, waiting at most ``timeout`` seconds for its documents to be written; a
    failure is logged (by its type, unless ``quiet``) and ``False`` returned.

    Metrics are reporting, as a metrics observer is: they never stop the consumer.
    """
    try:
        exporter.flush(timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - logged; consuming goes on
        if not quiet:
            logger.warning(message, extra={"error_type": type(exc).__name__})
        return False
    return True


def _run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)
    try:
        return asyncio.run(_consume(args))
    except KeyboardInterrupt:  # Ctrl-C before the consumer started reading: nothing to drain
        return 130
    except ConfigurationError as exc:
        logger.error("bad configuration: %s", exc, extra={"error_type": type(exc).__name__})
        return 2
    except MissingResourceError as exc:
        logger.error("%s", exc, extra={"error_type": type(exc).__name__, "option": exc.option})
        return 2
    except ShardlineError as exc:
        if exit_status_for(exc) == EXIT_REFUSED:
            # input refused before anything was read (a bad --namespace): a refusal, 2, as
            # every command gives it; reported as "consumer failed", 1, it read as a run-time fault
            logger.error("refused: %s", exc, extra={"error_type": type(exc).__name__})
            return EXIT_REFUSED
        logger.error("consumer failed: %s", exc, extra={"error_type": type(exc).__name__})
        return EXIT_FAILED


command = Command(
    name="consume",
    help="Consume a Kinesis stream or Kafka topic into a sink, with checkpoints "
    "(Ctrl-C/SIGTERM drains and exits 0).",
    configure=_configure,
    run=_run,
)
